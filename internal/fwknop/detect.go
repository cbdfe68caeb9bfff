package fwknop

// LooksLikeFwknop reports whether a UDP payload has the shape of a
// Rijndael fwknop SPA packet, without any key and in time linear in its
// length. It checks exactly:
//
//   - length MinPacketLen..MaxPacketLen (140..1500) bytes, fwknopd's own
//     window (packets of 400 and more, which fwknopd would treat as GPG,
//     are still classified as fwknop so they get an fwknop log line);
//   - every byte in the standard base64 alphabet A-Z a-z 0-9 + / ('='
//     never appears: fwknop strips it);
//   - the first byte is '8', '9', '+' or '/': the wire drops the 10
//     characters "U2FsdGVkX1" of base64("Salted__"), and the next
//     character carries the last 4 bits of '_' (1111) in its high bits,
//     so every packet a Rijndael fwknop client produces starts with one
//     of these four.
//
// A false result means Decode would reject the payload with ErrFormat; a
// true result promises nothing about keys. Random base64 text passes
// with probability 1/16; binary data essentially never does.
func LooksLikeFwknop(payload []byte) bool {
	if len(payload) < MinPacketLen || len(payload) > MaxPacketLen {
		return false
	}
	if !saltedFirstChar(payload[0]) {
		return false
	}
	for _, c := range payload {
		if !isB64Char(c) {
			return false
		}
	}
	return true
}

// saltedFirstChar reports whether c can be the first wire character: its
// high 4 bits must be 1111 (the end of '_' in "Salted__"), so c is one of
// the base64 digits 60..63.
func saltedFirstChar(c byte) bool { return c == '8' || c == '9' || c == '+' || c == '/' }
