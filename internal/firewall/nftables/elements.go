//go:build linux

package nftables

import (
	"slices"
	"time"

	nft "github.com/google/nftables"
)

// removalTimeout is the timeout of the placeholder element queueRemove adds
// before deleting it. It never outlives the transaction; it is set so that
// no element without a timeout is ever sent to a timeout set.
const removalTimeout = time.Second

// queueRefresh queues, chunk by chunk, add + delete + add of elems to s.
//
// Re-adding an existing element leaves its expiry alone (kernel 6.x), and
// google/nftables v0.3.0 cannot send NFTA_SET_ELEM_EXPIRATION, so the
// element is replaced: the first add makes sure it exists (a delete of a
// missing element fails the whole batch with ENOENT), the delete removes
// it, the second add installs it with a fresh timeout. All in the caller's
// transaction. s must have HasTimeout set, or the timeouts are not sent.
func (f *Firewall) queueRefresh(s *nft.Set, elems []nft.SetElement) error {
	for chunk := range slices.Chunk(elems, f.chunk) {
		if err := f.conn.SetAddElements(s, chunk); err != nil {
			return err
		}
		if err := f.conn.SetDeleteElements(s, keysOnly(chunk)); err != nil {
			return err
		}
		if err := f.conn.SetAddElements(s, chunk); err != nil {
			return err
		}
	}
	return nil
}

// queueRemove queues add + delete of keys in s, which removes them whether
// they exist or not (adding an existing element is a no-op).
func (f *Firewall) queueRemove(s *nft.Set, keys [][]byte) error {
	for chunk := range slices.Chunk(keys, f.chunk) {
		add := make([]nft.SetElement, len(chunk))
		for i, k := range chunk {
			add[i] = nft.SetElement{Key: k, Timeout: removalTimeout}
		}
		if err := f.conn.SetAddElements(s, add); err != nil {
			return err
		}
		if err := f.conn.SetDeleteElements(s, keysOnly(add)); err != nil {
			return err
		}
	}
	return nil
}

// keysOnly strips everything but the keys: a delete needs nothing else.
func keysOnly(elems []nft.SetElement) []nft.SetElement {
	out := make([]nft.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nft.SetElement{Key: e.Key}
	}
	return out
}
