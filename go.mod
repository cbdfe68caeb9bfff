module github.com/sesame-gw/sesame

go 1.26.8
