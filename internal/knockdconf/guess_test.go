package knockdconf

import (
	"reflect"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

func TestGuessOpen(t *testing.T) {
	r := func(p service.Proto, a, b uint16) service.Range { return service.Range{Proto: p, First: a, Last: b} }
	tcp, udp := service.TCP, service.UDP
	cases := []struct {
		cmd     string
		open    []service.Range
		timeout time.Duration
		guessed bool
	}{
		{"/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT", []service.Range{r(tcp, 22, 22)}, 0, false},
		{"ip6tables -I INPUT -s %IP% -p udp --dport 60000:61000 -j ACCEPT", []service.Range{r(udp, 60000, 61000)}, 0, false},
		{"iptables -A INPUT -s %IP% -p tcp -m multiport --dports 80,443 -j ACCEPT", []service.Range{r(tcp, 80, 80), r(tcp, 443, 443)}, 0, false},
		{"/usr/sbin/nft add element inet kbench allowed { %IP% . 2222 timeout 30s }", []service.Range{r(tcp, 2222, 2222)}, 30 * time.Second, true},
		{"nft add element inet f a { %IP% . udp . 51820 timeout 2h }", []service.Range{r(udp, 51820, 51820)}, 2 * time.Hour, false},
		{"nft add rule inet filter input ip saddr %IP% tcp dport { 22, 2200-2210 } accept", []service.Range{r(tcp, 22, 22), r(tcp, 2200, 2210)}, 0, false},
		{"ufw allow from %IP% to any port 22 proto tcp", []service.Range{r(tcp, 22, 22)}, 0, false},
		{"ufw allow from %IP% to any port 8080", []service.Range{r(tcp, 8080, 8080)}, 0, true},
		{`firewall-cmd --add-rich-rule='rule family="ipv4" source address="%IP%" port port="22" protocol="tcp" accept' --timeout=60`, []service.Range{r(tcp, 22, 22)}, 0, false},
		{"/usr/local/sbin/knock_add -i -c INPUT -p tcp -d 443 -f %IP%", []service.Range{r(tcp, 443, 443)}, 0, false},
	}
	for _, c := range cases {
		g, ok := GuessOpen(c.cmd)
		if !ok || !reflect.DeepEqual(g.Open, c.open) || g.Timeout != c.timeout || g.ProtoGuessed != c.guessed {
			t.Errorf("GuessOpen(%q) = %+v %v", c.cmd, g, ok)
		}
	}
	for _, cmd := range []string{"", "/usr/local/bin/open-everything %IP%", "echo %IP% >> /tmp/log", "iptables -A INPUT -s %IP% -j ACCEPT"} {
		if g, ok := GuessOpen(cmd); ok {
			t.Errorf("GuessOpen(%q) = %+v", cmd, g)
		}
	}
}
