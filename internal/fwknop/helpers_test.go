package fwknop

import (
	"crypto/aes"
	"crypto/cipher"
)

func cbcEncryptForTest(key, iv, dst, src []byte) error {
	b, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(dst, src)
	return nil
}
