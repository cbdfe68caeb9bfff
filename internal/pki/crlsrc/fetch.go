package crlsrc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
)

// FileFetcher reads the CRL file at path, returning ErrNotModified while
// its size, modification time, inode and change time stay those of the
// last successful read. Replace the file atomically (write elsewhere,
// rename), as `sesame ca revoke` does, so a reader never sees half a CRL.
func FileFetcher(path string) Fetcher {
	var mu sync.Mutex
	var last fileID
	return func(context.Context) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read CRL: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("read CRL: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("read CRL %s: not a regular file", path)
		}
		id := idOf(fi)
		if id == last {
			return nil, ErrNotModified
		}
		data, err := io.ReadAll(io.LimitReader(f, pki.MaxCRLSize+1))
		if err != nil {
			return nil, fmt.Errorf("read CRL: %w", err)
		}
		if len(data) > pki.MaxCRLSize {
			return nil, fmt.Errorf("read CRL %s: larger than %d bytes", path, pki.MaxCRLSize)
		}
		last = id
		return data, nil
	}
}

type fileID struct {
	size, mtime, ino, ctime int64
}

func idOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	id.ino, id.ctime = sysID(fi)
	return id
}

// HTTPOptions configure URL fetching.
type HTTPOptions struct {
	// Client is the HTTP client; nil means one with Timeout.
	Client *http.Client
	// Timeout bounds one fetch; 0 means 30 s.
	Timeout time.Duration
}

// HTTPFetcher fetches the CRL at url (http or https: the CRL is signed, so
// the transport need not be trusted) with a conditional GET (ETag,
// Last-Modified), returning ErrNotModified on 304. Only 200 with at most
// pki.MaxCRLSize bytes is a CRL.
func HTTPFetcher(url string, opts HTTPOptions) Fetcher {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	var mu sync.Mutex
	var etag, lastMod string
	return func(ctx context.Context) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, fmt.Errorf("fetch CRL: %w", err)
		}
		req.Header.Set("Accept", "application/pkix-crl, application/x-pem-file, */*;q=0.1")
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		if lastMod != "" {
			req.Header.Set("If-Modified-Since", lastMod)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch CRL: %w", err)
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotModified:
			return nil, ErrNotModified
		default:
			return nil, fmt.Errorf("fetch CRL %s: HTTP %s", url, resp.Status)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, pki.MaxCRLSize+1))
		if err != nil {
			return nil, fmt.Errorf("fetch CRL %s: %w", url, err)
		}
		if len(data) > pki.MaxCRLSize {
			return nil, fmt.Errorf("fetch CRL %s: larger than %d bytes", url, pki.MaxCRLSize)
		}
		etag, lastMod = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		return data, nil
	}
}
