#!/usr/bin/env python3
"""Writes the pull bench's images as one OCI image layout (scripts/bench).

  make_image.py DIR LAYER_MB [BASE_TAR]

DIR gets oci-layout, index.json and blobs/sha256 with two images:
  big    4 layers: L1 L2 L3 L4
  big2   4 layers: L1 L2 L3 L5  (shares its first 3 layers with big)
Every layer is a tar holding one file of LAYER_MB MiB of random bytes from
/dev/urandom, compressed with gzip -1 as registries' layers are gzip. When
BASE_TAR (a root filesystem tarball, the bench's busybox) is given, its
entries go into L1 too, so the pulled image runs `true` / `sh` (config Cmd
["sh"]). Each layer's diff_id is the sha256 of its uncompressed tar. Prints
the two images' compressed sizes as JSON.

Only the standard library.
"""
import gzip
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

CHUNK = 1 << 20
MTIME = 1700000000  # fixed, so layers differ only by their random bytes


def goarch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


class Writer:
    """File-like sink: gzip -1 into a temp file, hashing both streams."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.hz = hashlib.sha256()
        self.hu = hashlib.sha256()
        self.size = 0
        self.gz = gzip.GzipFile(fileobj=self, mode="wb", compresslevel=1, mtime=0, filename="")

    # raw (compressed) side, called by GzipFile
    def write(self, b):
        self.hz.update(b)
        self.size += len(b)
        return self.f.write(b)

    def flush(self):
        self.f.flush()

    # uncompressed side, called by tarfile
    class Tar:
        def __init__(self, w):
            self.w = w

        def write(self, b):
            self.w.hu.update(b)
            return self.w.gz.write(b)

    def close(self):
        self.gz.close()
        self.f.close()


class RandomFile(io.RawIOBase):
    def __init__(self, n):
        self.left = n
        self.src = open("/dev/urandom", "rb", buffering=0)

    def readable(self):
        return True

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        b = self.src.read(min(n, CHUNK))
        self.left -= len(b)
        return b


def make_layer(blobs, n, size, base_tar=None):
    tmp = os.path.join(blobs, f".layer{n}.tmp")
    w = Writer(tmp)
    with tarfile.open(fileobj=Writer.Tar(w), mode="w|", format=tarfile.PAX_FORMAT) as t:
        if base_tar:
            with tarfile.open(base_tar) as src:
                for m in src:
                    t.addfile(m, src.extractfile(m) if m.isfile() else None)
        ti = tarfile.TarInfo(f"random-{n}.bin")
        ti.size, ti.mode, ti.mtime, ti.uid, ti.gid = size, 0o644, MTIME, 0, 0
        t.addfile(ti, RandomFile(size))
    w.close()
    digest = "sha256:" + w.hz.hexdigest()
    os.rename(tmp, os.path.join(blobs, w.hz.hexdigest()))
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": w.size}, \
        "sha256:" + w.hu.hexdigest()


def put_blob(blobs, data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + h, "size": len(data)}


def image(blobs, layers, name):
    cfg = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": goarch(),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"berth bench: {name} layer {i + 1}"}
                    for i in range(len(layers))],
    }
    c = put_blob(blobs, json.dumps(cfg, sort_keys=True).encode())
    c["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": c, "layers": [l for l, _ in layers]}
    m = put_blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    m["annotations"] = {"org.opencontainers.image.ref.name": name}
    return m, sum(l["size"] for l, _ in layers)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    d, mb = sys.argv[1], float(sys.argv[2])
    base = sys.argv[3] if len(sys.argv) == 4 else None
    size = int(mb * CHUNK)
    blobs = os.path.join(d, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    ls = [make_layer(blobs, 1, size, base)] + [make_layer(blobs, n, size) for n in (2, 3, 4, 5)]
    big, big_size = image(blobs, ls[0:4], "big")
    big2, big2_size = image(blobs, ls[0:3] + [ls[4]], "big2")
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [big, big2]}, f)
    json.dump({"big": {"layers": 4, "bytes": big_size, "manifest": big["digest"]},
               "big2": {"layers": 4, "bytes": big2_size, "manifest": big2["digest"], "new_layers": 1}},
              sys.stdout)
    print()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
