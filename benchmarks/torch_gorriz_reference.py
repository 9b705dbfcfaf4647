"""The same Gorriz 3-scale training step in eager PyTorch, for comparison with `train_throughput.py`.

Generator (IBN, spectral norm on every convolution), three multi-resolution discriminators, LSGAN per
scale + 100 x L1, Adam(2e-4, 0.5): the network and losses of `experiments/gorriz.yaml`, written the way a
PyTorch user would (the usual eager training loop). Needs `pip install torch` (not a dependency of the
package).

    python benchmarks/torch_gorriz_reference.py [--size 256] [--batch 4] [--steps 5]
"""

import argparse
import importlib.util
import os
import time

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def cpu_line():
    """The CPU's model and its AVX2 / AVX-512 / AMX flags, from keras_colour/machine.py loaded alone (importing the
    package would bring TensorFlow, and its thread pools, into this PyTorch process)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_colour", "machine.py")
    spec = importlib.util.spec_from_file_location("keras_colour_machine", path)
    machine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(machine)
    name, flags = machine.cpu_description()
    return f"CPU: {name}, {os.cpu_count()} cores, flags: {' '.join(flags) or 'none of AVX2+'}"


def conv(cin, cout, stride, sn=True):
    layer = nn.Conv2d(cin, cout, 4, stride=stride, padding=1 if stride == 2 else "same")
    return spectral_norm(layer) if sn else layer


def norm(kind, channels):
    return {"bn": nn.BatchNorm2d(channels), "in": nn.InstanceNorm2d(channels, affine=True), "none": nn.Identity()}[kind]


class Generator(nn.Module):
    def __init__(self, downs=(64, 128, 256, 512, 512, 512, 512)):
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for i, f in enumerate(downs):
            self.down.append(nn.Sequential(conv(cin, f, 2), norm("none" if i == 0 else "bn", f), nn.LeakyReLU(0.2)))
            cin = f
        self.up = nn.ModuleList()
        ups = list(reversed(downs[:-1]))
        for j, (f, skip) in enumerate(zip(ups, reversed(downs[:-1]))):
            last = j == len(ups) - 1
            self.up.append(
                nn.Sequential(nn.Upsample(scale_factor=2), conv(cin, f, 1), norm("in" if last else "bn", f), nn.ReLU())
            )
            cin = f + skip
        self.out = nn.Sequential(nn.Upsample(scale_factor=2), conv(cin, 2, 1), nn.Tanh())

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = torch.cat([block(x), skip], 1)
        return self.out(x)


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales=3):
        super().__init__()
        self.nets = nn.ModuleList()
        for _ in range(scales):
            layers, cin = [], 3
            for f, n in zip((64, 128, 256, 512), ("none", "in", "bn", "bn")):
                layers += [conv(cin, f, 2), norm(n, f), nn.LeakyReLU(0.2)]
                cin = f
            layers.append(conv(cin, 1, 1))
            self.nets.append(nn.Sequential(*layers))
        self.pool = nn.AvgPool2d(2)

    def forward(self, lightness, ab):
        x = torch.cat([lightness, ab], 1)
        outs = []
        for net in self.nets:
            outs.append(net(x))
            x = self.pool(x)
        return outs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--bf16", action="store_true", help="torch.autocast(cpu, bfloat16), the analogue of mixed_bfloat16"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    g, d = Generator(), MultiScaleDiscriminator(3)
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    lightness = torch.rand(args.batch, 1, args.size, args.size) * 2 - 1
    ab = torch.rand(args.batch, 2, args.size, args.size) - 0.5
    mse, l1 = nn.MSELoss(), nn.L1Loss()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            losses_step()

    def losses_step():
        fake = g(lightness)
        d_opt.zero_grad()
        d_loss = sum(
            0.5 * (mse(r, torch.ones_like(r)) + mse(f, torch.zeros_like(f)))
            for r, f in zip(d(lightness, ab), d(lightness, fake.detach()))
        )
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad()
        g_loss = sum(mse(f, torch.ones_like(f)) for f in d(lightness, fake)) + 100 * l1(fake, ab)
        g_loss.backward()
        g_opt.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    elapsed = time.perf_counter() - start
    print(cpu_line())
    print(f"PyTorch {torch.__version__} eager, {torch.get_num_threads()} threads, CPU cores {os.cpu_count()}: "
          f"Gorriz 3-scale step{' (autocast bfloat16)' if args.bf16 else ''}, size {args.size}, batch {args.batch}: "
          f"{args.batch * args.steps / elapsed:.2f} images/s")  # fmt: skip


if __name__ == "__main__":
    main()
