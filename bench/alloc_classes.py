"""Per-connection growth of each jemalloc size class between the first two
stats dumps in a server log (see bench/alloc_classes.sh). Usage: LOG [CONNECTIONS]"""
import sys
lines=open(sys.argv[1]).read().split('\n')
starts=[i for i,l in enumerate(lines) if l.startswith('Merged arenas stats:')]
def bins(start):
    d={}
    i=start
    while not lines[i].lstrip().startswith('bins:'): i+=1
    hdr=lines[i].split(); ci=hdr.index('curregs')-1
    i+=1
    while lines[i].strip() and not lines[i].startswith('large:'):
        f=lines[i].split()
        if f[0].isdigit(): d[int(f[0])]=(int(f[2]),int(f[ci]))
        i+=1
    while not lines[i].startswith('large:          size'): i+=1
    i+=1
    while i<len(lines) and not lines[i].startswith('--- End') and not lines[i].startswith('extents:'):
        f=lines[i].split()
        if f and f[0].isdigit() and len(f)>3: d['L%s'%f[0]]=(int(f[2]),int(f[-1]))
        if lines[i].strip()=='' : break
        i+=1
    return d
for l in lines:
    if l.startswith('Allocated:'): print(l)
b=bins(starts[0]); a=bins(starts[1])
n=int(sys.argv[2]) if len(sys.argv)>2 else 10000
tot=0
for s in sorted(a, key=lambda k: (isinstance(k,str), int(str(k).lstrip('L')))):
    da=a[s][0]-b.get(s,(0,0))[0]; cr=a[s][1]-b.get(s,(0,0))[1]
    tot+=da
    if abs(da)>n*2: print('%8s  +%9d B  %+7d regs  %7.1f B/conn'%(s,da,cr,da/n))
print('total allocated per conn %.1f B'%(tot/n))
