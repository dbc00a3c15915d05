import sys, time, torch
sys.path.insert(0, '.')
from launch.bench.caption import aged_streams, many_streams
from agent.perception.train import load_checkpoint
from agent.perception.decode import CaptionDecoding
from envs.synthetic import all_captions
m = load_checkpoint('agent/perception/checkpoints/captioner.pt', 'cuda')
d = CaptionDecoding(m, all_captions(), 'cuda')
N = 20000
st = m.initial_state(N, 'cuda')
fr = torch.randint(0, 255, (N, 64, 64, 3), dtype=torch.uint8, device='cuda')
def t(f, n=10):
    f(); torch.cuda.synchronize(); a = time.perf_counter()
    for _ in range(n): f()
    torch.cuda.synchronize(); return (time.perf_counter() - a) / n * 1e3
with torch.no_grad():
    x, _ = m._inputs(fr[:, None], st)
    print('inputs', t(lambda: m._inputs(fr[:, None], st)))
    print('encoder', t(lambda: m.encoder(x[:, 0])))
    print('step', t(lambda: m.step(fr, st)))
    f, _ = m.step(fr, st)
    print('decode tokens', t(lambda: d.tokens(f)))
    print('decode+cpu', t(lambda: d.tokens(f).cpu()))
    print('greedy strings', t(lambda: d.greedy(f), 3))
    torch.backends.cudnn.benchmark = True
    print('encoder cudnn.benchmark', t(lambda: m.encoder(x[:, 0])))
    with torch.autocast('cuda', torch.bfloat16):
        print('encoder bf16', t(lambda: m.encoder(x[:, 0])))
        print('step bf16', t(lambda: m.step(fr, st)))
        print('decode bf16', t(lambda: d.tokens(f)))
