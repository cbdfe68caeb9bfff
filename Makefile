# The two commands README.md promises:
#   make demo   builds sesame and runs the namespace demo (root)
#   make test   runs every test, unit and end to end (root for the latter)
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build demo test fuzz bench bench-suite clean deb

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sesame ./cmd/sesame

demo: build
	./bin/sesame demo

test:
	$(GO) test -race -count=1 -timeout 30m ./...

# The benchmark suite against knockd and fwknopd (root; ~10 min, -quick ~4).
bench-suite:
	$(GO) run ./bench

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# make deb: a .deb (nfpm, pinned; v2.46+ needs modules the Go proxy here
# refuses) with the static, version-stamped binary, the systemd unit, man
# pages, completions and examples, in $(DIST)/.
NFPM       ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST       ?= dist
ARCH       ?= $(shell $(GO) env GOARCH)
DEB_VERSION ?= $(shell echo '$(VERSION)' | sed -E -e 's/^v?([0-9]+\.[0-9]+)/\1/; t ok' -e 's/^/0.0~git/' -e ':ok' -e 's/-/+/; s/-/./g')

deb:
	rm -rf $(DIST)/deb && mkdir -p $(DIST)/deb/man
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/deb/sesame ./cmd/sesame
	gzip -9n -c packaging/man/sesame.8 > $(DIST)/deb/man/sesame.8.gz
	gzip -9n -c packaging/man/sesame.toml.5 > $(DIST)/deb/man/sesame.toml.5.gz
	VERSION='$(DEB_VERSION)' ARCH=$(ARCH) BIN=$(DIST)/deb/sesame MANDIR=$(DIST)/deb/man \
		$(NFPM) package -f packaging/nfpm.yaml -p deb -t $(DIST)/

clean:
	rm -rf bin dist
