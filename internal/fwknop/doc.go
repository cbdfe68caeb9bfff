// Package fwknop implements the wire format of fwknop's Single Packet
// Authorization (SPA) messages, byte-compatible with fwknop 2.6.10 / 2.6.11
// (FKO protocol 3.0.0, Rijndael mode). The specification it follows is
// docs/fwknop.md in this repository; the reference is libfko
// (lib/fko_decode.c, lib/fko_encode.c, lib/cipher_funcs.c, lib/fko_hmac.c).
//
// A packet on the wire is
//
//	B64CT[10:] || B64HMAC
//	B64CT     = base64("Salted__" || salt[8] || AES-256-CBC(PKCS7(PLAINTEXT))), '=' stripped
//	PLAINTEXT = ENCODED ":" base64(H(ENCODED))
//	ENCODED   = rand:b64(user):timestamp:version:type:b64(msg)[:b64(nat)][:b64(auth)][:timeout]
//
// where the AES key and IV come from OpenSSL's EVP_BytesToKey (MD5, one
// round) over the passphrase and the salt, and the optional HMAC covers the
// base64 ciphertext text with its "U2FsdGVkX1" prefix restored. This is an
// existing, fixed format: the package reproduces it with the standard
// library (crypto/aes, crypto/cipher CBC, crypto/hmac, crypto/md5, sha1,
// sha256, sha512, sha3) and does not invent any composition of its own.
//
// Decode verifies the HMAC before it decrypts (constant-time comparison),
// then the inner digest, then every field as libfko does. Encode builds
// packets a stock fwknopd accepts. LooksLikeFwknop classifies a UDP payload
// without any key. ReplayDigest computes the key fwknopd stores in its
// digest.cache.
//
// The package is pure: no file, network or clock access (time and
// randomness are passed in). All functions are safe for concurrent use;
// Keys and Message values are not modified by the functions that read
// them.
package fwknop
