import sys,re,collections
f=open(sys.argv[1])
state={}; since={}; cls={}
tot=collections.defaultdict(lambda: collections.defaultdict(float)); cnt=collections.defaultdict(lambda: collections.defaultdict(int))
pending=None  # (goid) awaiting stack to classify
keys=[('server.(*Loop).run','loop'),('ioWorkers).run','io'),('transport).writeLoop','writeLoop'),('transport).readLoop','readLoop'),('net/http.(*conn).serve','http'),('httpAPI).send','httpsend'),('runtime.gcBgMarkWorker','gc'),('bgsweep','gc'),('bgscavenge','gc')]
stackfor=None; buf=[]
t0=None;t1=None
def flush_stack():
    global stackfor,buf
    if stackfor is not None and stackfor not in cls:
        s=''.join(buf)
        for k,c in keys:
            if k in s: cls[stackfor]=c; break
    stackfor=None; buf=[]
for line in f:
    if line.startswith("\t") or line.startswith("Stack=") or line.startswith("TransitionStack="):
        if stackfor is not None: buf.append(line)
        continue
    flush_stack()
    m=re.search(r'G=(-?\d+) StateTransition Time=(\d+) GoID=(\d+) (\w+)->(\w+)',line)
    if not m: continue
    g=int(m.group(3)); t=int(m.group(2)); a=m.group(4); b=m.group(5)
    if t0 is None: t0=t
    t1=t
    if g in state:
        tot[g][state[g]]+=t-since[g]; cnt[g][b]+=1
    state[g]=b; since[g]=t
    if a=='Running' or b=='Running' or b=='Syscall': stackfor=g
flush_stack()
agg=collections.defaultdict(lambda: collections.defaultdict(float)); wakes=collections.defaultdict(int)
for g in tot:
    c=cls.get(g,'other')
    for s,v in tot[g].items(): agg[c][s]+=v
    wakes[c]+=cnt[g]['Runnable']
n=float(sys.argv[2])
print(f"trace {(t1-t0)/1e9:.2f}s, per put (n={n:.0f}), microseconds:")
for c in sorted(agg):
    a=agg[c]
    print(f"{c:10s} runnable {a['Runnable']/n/1e3:8.1f}  running {a['Running']/n/1e3:8.1f}  syscall {a['Syscall']/n/1e3:8.1f}  wakes/put {wakes[c]/n:5.2f}")
