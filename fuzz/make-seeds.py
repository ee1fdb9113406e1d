#!/usr/bin/env python3
# Writes the seed inputs of fuzz/seeds (scripts/fuzz feeds them to each
# target beside its growing corpus). Deterministic; needs only python3.
import io, tarfile, os, gzip, json, shutil
# Short archives: the fuzzer mutates every byte it is given.
tarfile.RECORDSIZE = 512
HERE = os.path.dirname(os.path.abspath(__file__))
S = os.path.join(HERE, 'seeds')
def w(target, name, data):
    os.makedirs(f'{S}/{target}', exist_ok=True)
    open(f'{S}/{target}/{name}', 'wb').write(data if isinstance(data, bytes) else data.encode())

def tar(entries, fmt=tarfile.GNU_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w', format=fmt) as t:
        for e in entries:
            kind, name = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == 'f':
                data = e[2].encode() if len(e) > 2 else b'hi\n'
                ti.size = len(data); t.addfile(ti, io.BytesIO(data))
            elif kind == 'd':
                ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
            elif kind == 's':
                ti.type = tarfile.SYMTYPE; ti.linkname = e[2]; t.addfile(ti)
            elif kind == 'h':
                ti.type = tarfile.LNKTYPE; ti.linkname = e[2]; t.addfile(ti)
            elif kind == 'c':
                ti.type = tarfile.CHRTYPE; ti.devmajor = 1; ti.devminor = 3; t.addfile(ti)
            elif kind == 'p':
                ti.type = tarfile.FIFOTYPE; t.addfile(ti)
    return b.getvalue()

# tar_unpack: byte 0 even = plain, odd = target gzips it.
out = '/tmp/berth-fuzz-tar/outside'
cases = {
 'plain': [('d','./'),('d','etc'),('f','etc/hosts','127.0.0.1 x\n'),('s','bin','usr/bin'),('d','usr/bin'),('f','bin/sh')],
 'dotdot': [('f','../outside/sentinel','x')],
 'symlink-parent': [('s','a','..'),('f','a/outside/sentinel','x')],
 'symlink-rel': [('s','a','../outside'),('f','a/new','x'),('f','a/sentinel','x')],
 'symlink-abs': [('s','a',out),('f','a/sentinel','x'),('s','b','/'),('f','b/etc/x','x')],
 'symlink-chain': [('d','d'),('s','d/l','../../..'),('s','m','d/l/tmp/berth-fuzz-tar/outside'),('f','m/sentinel','x')],
 'hardlink-out': [('h','h','../outside/sentinel'),('h','h2',out+'/sentinel')],
 'hardlink-via-symlink': [('s','s',out),('h','h','s/sentinel'),('f','h','x')],
 'replace-dir-with-link': [('d','x'),('f','x/f'),('s','x','../outside'),('f','x/sentinel','y')],
 'whiteout': [('d','a'),('f','a/.wh.b'),('f','a/.wh..wh..opq'),('f','.wh..wh.plnk/1'),('f','.wh.'),('s','l','..'),('f','l/.wh.outside')],
 'nodes': [('c','null'),('p','fifo'),('f','null','x')],
 'pax-long': [('f','d/'+'n'*200,'long'),('s','l'*150,'../'*60)],
}
for i,(n,e) in enumerate(cases.items()):
    fmt = tarfile.PAX_FORMAT if n=='pax-long' else tarfile.GNU_FORMAT
    data = tar(e, fmt)
    w('tar_unpack', n, bytes([0]) + data)
    w('tar_unpack', n + '-gz', bytes([1]) + data)
w('tar_unpack', 'raw-gzip', bytes([0]) + gzip.compress(tar(cases['symlink-rel']), mtime=0))

# image_archive: mode byte, then TOP 0xFF MANIFEST 0xFF CONFIG 0xFF LAYER.
layer = tar([('d','etc'),('f','etc/os-release','ID=fuzz\n'),('s','bin','usr/bin')])
config = json.dumps({"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["@D"]}})
manifest = json.dumps({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@C","size":0},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"@L","size":0}]}).replace('"size": 0}', '"size": @c}',1)
index = json.dumps({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@M","size":0,"annotations":{"org.opencontainers.image.ref.name":"fuzz/img:1"}}]})
nested = json.dumps({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"@M","platform":{"os":"linux","architecture":"amd64"}},{"digest":"@M","annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]})
docker = json.dumps([{"Config":"config.json","RepoTags":["fuzz:1","fuzz:1"],"Layers":["layer.tar"]}])
F = b'\xff'
def arch(mode, top, m, c, l): return bytes([mode]) + top.encode() + F + m.encode() + F + c.encode() + F + l
w('image_archive', 'oci', arch(0, index, manifest, config, layer))
w('image_archive', 'oci-gz-layer', arch(2, index, manifest, config, gzip.compress(layer, mtime=0)))
w('image_archive', 'oci-index-in-index', arch(0, index.replace('application/vnd.oci.image.manifest.v1+json','application/vnd.oci.image.index.v1+json'), nested, config, layer))
w('image_archive', 'docker', arch(1, docker, '', config, layer))
w('image_archive', 'docker-gz', arch(3, docker, '', config, layer))
outer = tar([('f','manifest.json',docker),('s','config.json','blobs/x'),('d','blobs'),('f','blobs/x',config),('h','layer.tar','blobs/x')])
w('image_archive', 'raw-links', bytes([4]) + outer)

# compose
shutil.copy(os.path.join(HERE, '../examples/shop/compose.yaml'), f'{S}/compose/shop.yaml') if os.makedirs(f'{S}/compose', exist_ok=True) is None else None
w('compose','vars', 'services:\n  web:\n    image: "${IMG:-busybox}:${TAG:?need a tag}"\n    ports: ["127.0.0.1:8080:80", "53/udp"]\n    volumes: ["./data:/data:ro", "named:/v", "/anon"]\n    environment: {A: "$${X}", B: 1}\n    depends_on: {db: {condition: service_healthy}}\n    healthcheck: {test: ["CMD", "true"], interval: 1s, retries: 3}\n    deploy: {replicas: 2, resources: {limits: {memory: 64m, cpus: "0.5"}}}\n  db:\n    build: {context: ., dockerfile: Dockerfile, args: [A=1]}\n    networks: {back: {ipv4_address: 10.5.0.9}}\nnetworks:\n  back: {ipam: {config: [{subnet: 10.5.0.0/24}]}}\nvolumes:\n  named: {}\n')

# format_template
for i, t in enumerate(['{{.State.Status}} {{ .State.Pid }}', '{{index .Config.Labels "a.b"}}', '{{(index .Mounts 0).Destination}}', '{{json .State}}', '{{json (index .NetworkSettings.Ports "80/tcp")}}', 'x {{.Nothing}} y {{', '{{index .A 0 "k" 1}}\0{"A":[{"k":[1,2]}]}']):
    w('format_template', f't{i}', t)

# user_input
for i, t in enumerate(['1h30m', '512m', '127.0.0.1:8080:80/udp', '::80', '8000:80', 'name:/data:ro', '/data:ro', './x:/y:z,rw', '/dev/sdb:/dev/xvdb:r', 'on-failure:3', '1.5s', '10GiB', '/run:size=64m,mode=1777', 'db:10.0.0.5', 'nofile=1024:2048', 'host.docker.internal:host-gateway']):
    w('user_input', f'u{i}', t)
