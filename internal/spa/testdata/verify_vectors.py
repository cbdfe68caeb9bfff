#!/usr/bin/env python3
"""Independent check of Sesame SPA v1 vectors (docs/protocol.md) with
pyca/cryptography (needs hazmat.primitives.hpke: cryptography >= 47).

Written from the spec, not from the Go code: derives every value from the
vector's inputs and the packet, and fails on any difference.
Usage: verify_vectors.py vectors.json   (exit 0 = all good, 77 = no HPKE)
"""
import hashlib, hmac, ipaddress, json, struct, sys

try:
    from cryptography.hazmat.primitives import hpke, serialization
    from cryptography.hazmat.primitives.asymmetric import x25519, ed25519
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError as e:
    print("skip: %s" % e)
    sys.exit(77)

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def parse_body(pt):
    i = 0
    kind = pt[i]; i += 1
    (clen,) = struct.unpack_from(">H", pt, i); i += 2
    cred = pt[i:i + clen]; i += clen
    (ts,) = struct.unpack_from(">q", pt, i); i += 8
    (dur,) = struct.unpack_from(">I", pt, i); i += 4
    tag = pt[i]; i += 1
    addr = None
    if tag == 4:
        addr = str(ipaddress.IPv4Address(pt[i:i + 4])); i += 4
    elif tag == 6:
        addr = str(ipaddress.IPv6Address(pt[i:i + 16])); i += 16
    else:
        check(tag == 0, "address tag")
    n = pt[i]; i += 1
    svcs = []
    for _ in range(n):
        proto, first, last = struct.unpack_from(">BHH", pt, i); i += 5
        name = {6: "tcp", 17: "udp"}[proto]
        svcs.append("%d/%s" % (first, name) if first == last else "%d-%d/%s" % (first, last, name))
    body_end = i
    slen = pt[i]; i += 1
    sig = pt[i:i + slen]; i += slen
    check(i == len(pt), "trailing bytes")
    return kind, cred, ts, dur, addr, svcs, body_end, sig


def verify(v):
    gw_priv = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(v["gateway_private"]))
    gw = gw_priv.public_key().public_bytes(*RAW)
    check(gw.hex() == v["gateway_public"], "gateway public key")
    cl = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["client_seed"]))
    clpub = cl.public_key().public_bytes(*RAW)
    check(clpub.hex() == v["client_public"], "client public key")

    pkt = bytes.fromhex(v["packet"])
    check(89 <= len(pkt) <= 1232, "size")
    check(pkt[0] == 0xD3 and pkt[1] == 0x01, "magic/version")
    header, enc, ct, mac1 = pkt[:2], pkt[2:34], pkt[34:-16], pkt[-16:]

    kpre = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"sesame-spa/1 prefilter").derive(gw)
    check(kpre.hex() == v["prefilter_key"], "prefilter key")
    check(hmac.new(kpre, pkt[:-16], hashlib.sha256).digest()[:16] == mac1, "mac1")

    info = b"sesame-spa/1 packet" + header + gw
    check(info.hex() == v["hpke_info"], "hpke info")
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    pt = suite.decrypt(enc + ct, gw_priv, info=info)
    check(pt.hex() == v["plaintext"], "plaintext")

    kind, cred, ts, dur, addr, svcs, body_end, sig = parse_body(pt)
    check(kind == 1 and cred == clpub, "credential")
    check(ts == v["timestamp_ms"], "timestamp")
    check(svcs == v["services"], "services %r" % svcs)
    check(addr == (v.get("addr") or None), "address")
    body = pt[:body_end]
    check(body.hex() == v["body"], "body")
    transcript = b"sesame-spa/1 signature" + header + gw + enc + body
    check(transcript.hex() == v["transcript"], "transcript")
    cl.public_key().verify(sig, transcript)  # raises on failure
    check(cl.sign(transcript) == sig, "deterministic signature")
    rk = hashlib.sha256(b"sesame-spa/1 replay" + enc).digest()[:16]
    check(rk.hex() == v["replay_key"], "replay key")
    return dur


def main():
    with open(sys.argv[1]) as f:
        vectors = json.load(f)["vectors"]
    for v in vectors:
        verify(v)
        print("ok: %s" % v["name"])
    check(len(vectors) > 0, "no vectors")


if __name__ == "__main__":
    main()
