package afpacket

// network returns the IP packet in data, which an AF_PACKET SOCK_DGRAM
// socket delivered with the reported protocol: the data itself, or what
// follows an in-band 802.1Q/802.1ad tag the kernel left in place (the inner
// tag of a QinQ frame, reported as a VLAN protocol or as the inner IP
// protocol). It mirrors the filter's program.
func network(data []byte, proto uint16) ([]byte, bool) {
	if len(data) == 0 {
		return nil, false
	}
	switch proto {
	case ethPIPv4:
		if data[0]>>4 == 4 {
			return data, true
		}
	case ethPIPv6:
		if data[0]>>4 == 6 {
			return data, true
		}
	case ethP8021Q, ethP8021AD:
	default:
		return nil, false
	}
	if len(data) < 5 {
		return nil, false
	}
	inner := uint16(data[2])<<8 | uint16(data[3])
	if inner == ethPIPv4 && data[4]>>4 == 4 || inner == ethPIPv6 && data[4]>>4 == 6 {
		return data[4:], true
	}
	return nil, false
}
