import os
def _own():
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try: link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError: continue
        if link.startswith("socket:["): inodes.add(link[8:-1])
    out = []
    for row in open("/proc/net/tcp").read().splitlines()[1:]:
        f = row.split()
        if f[9] in inodes: out.append((f[1], f[2], f[3]))
    return out
def test_zz_show_sockets():
    print("\nOWN SOCKETS", [(int(l.split(':')[1],16), int(r.split(':')[1],16), st) for l, r, st in _own()])
