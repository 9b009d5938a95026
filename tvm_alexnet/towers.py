"""The paper's two towers: the network split from its spec into identical
towers, each holding half of every layer's kernels (filters, units), run on
their own devices, exchanging activations only where the paper's GPUs did.

A grouped layer (conv2, conv4, conv5) reads only its own tower's input; any
other layer after the first (conv3, fc6, fc7, fc8) reads every tower's
output: those are the exchanges. conv1 reads the image, which every tower
has. Every parameter splits along its first (output) axis, so a tower's
weights are an exact slice of the single-device grouped model's: split and
join move checkpoints between the two.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import torch
import torch.distributed as dist
from torch import nn

from . import build
from .autograd import CompiledLayer, LayerKernels
from .errors import UserError
from .layers import layer_modules, walk_layers
from .runtime import CompiledNetwork
from .spec import Network

TOWERS = 2


def tower_network(net: Network, towers: int = TOWERS) -> Network:
    """One of `towers` identical towers of `net`."""
    if not any(c.groups == towers for c in net.convs):
        raise UserError(f"variant {net.variant!r} has no {towers} towers (no layer grouped {towers} ways); "
                        "use the paper variant")
    if net.num_classes % towers:
        raise UserError(f"{net.num_classes} classes do not split into {towers} towers")
    if net.lrn_groups != towers and any(c.lrn for c in net.convs):
        raise UserError(f"LRN convention {net.lrn!r} normalises across both towers' channels, which would need an "
                        "exchange at every LRN; towers take --lrn paper (windows within each tower)")
    convs = [replace(c, in_channels=c.in_channels // c.groups, out_channels=c.out_channels // towers, groups=1)
             for c in net.convs]
    dense = [replace(d, out_features=d.out_features // towers) for d in net.dense]
    return replace(net, convs=tuple(convs), dense=tuple(dense), towers=towers)


def exchanges(net: Network) -> list[str]:
    """The layers whose towers read every tower's output: conv3, fc6, fc7, fc8 in the paper."""
    return [layer.name for layer in net.layers[1:] if getattr(layer, "groups", 1) == 1]


def exchanged_floats(net: Network, towers: int = TOWERS) -> dict[str, int]:
    """Floats per image each tower sends at each exchange (its output before
    that layer), and its share of the logits at the end."""
    sizes, before = {}, None
    for k in tower_network(net, towers).kernels():
        if k.layer in exchanges(net):
            sizes.setdefault(k.layer, before)
        before = math.prod(k.output)
    return sizes | {"logits": net.num_classes // towers}


def split(state: dict[str, torch.Tensor], towers: int = TOWERS) -> list[dict[str, torch.Tensor]]:
    """A single-device state dict -> one per tower."""
    chunks = {name: t.chunk(towers) for name, t in state.items()}
    return [{name: c[i] for name, c in chunks.items()} for i in range(towers)]


def join(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One state dict per tower -> the single-device state dict."""
    return {name: torch.cat([s[name].to(states[0][name].device) for s in states]) for name in states[0]}


class Tower(nn.Module):
    """One tower's parameters (conv1 ... fc8, each 1/towers of the whole)."""

    def __init__(self, tower_net: Network):
        super().__init__()
        for name, module in layer_modules(tower_net).items():
            setattr(self, name, module)


def compile_tower(net: Network, target: str, batch: int | None, device: torch.device) -> CompiledNetwork:
    tower_net = tower_network(net)
    directory = build.build(tower_net, build.parse_target(target), batch)
    compiled = CompiledNetwork(directory, device.index or 0)
    if compiled.device_type != device.type:
        raise UserError(f"target {target!r} builds for {compiled.device_type}, tower device is {device}")
    return compiled


# -- two towers in one process -------------------------------------------------------------------


def run_towers(pool: ThreadPoolExecutor, streams: list, work) -> list:
    """work(t) for every tower t at once, a thread each. A tower on a GPU
    runs on its own CUDA stream (`streams[t]`; None on CPU), which TVM's
    kernels follow through tvm_ffi's thread-local stream, so two towers on
    one GPU overlap; the streams wait for the caller's inputs first and the
    caller waits for their outputs after."""
    callers = [None if s is None else torch.cuda.current_stream(s.device) for s in streams]

    def on_stream(t: int):
        if streams[t] is None:
            return work(t)
        import tvm_ffi

        streams[t].wait_stream(callers[t])
        with torch.cuda.device(streams[t].device), tvm_ffi.use_torch_stream(torch.cuda.stream(streams[t])):
            return work(t)

    results = list(pool.map(on_stream, range(len(streams))))
    for caller, stream in zip(callers, streams):
        if stream is not None:
            caller.wait_stream(stream)
    return results


class TowerLayers(torch.autograd.Function):
    """One layer of every tower, the towers concurrently (see run_towers),
    forward and backward, through each tower's compiled kernels."""

    @staticmethod
    def forward(ctx, pool: ThreadPoolExecutor, streams: list, kernels: list[LayerKernels], *tensors):
        n = len(kernels)
        xs, weights, biases, masks = (tensors[i * n:(i + 1) * n] for i in range(4))
        results = run_towers(pool, streams, lambda t: kernels[t].forward(xs[t], weights[t], biases[t], masks[t]))
        ctx.pool, ctx.streams, ctx.kernels, ctx.saved = pool, streams, kernels, [saved for _, saved in results]
        ctx.weights = weights
        return tuple(out for out, _ in results)

    @staticmethod
    def backward(ctx, *dys):
        n = len(ctx.kernels)
        need_input = any(ctx.needs_input_grad[3:3 + n])
        grads = run_towers(ctx.pool, ctx.streams, lambda t: ctx.kernels[t].backward(
            dys[t].contiguous(), ctx.saved[t], ctx.weights[t], need_input))
        dxs, dws, dbs = zip(*grads)
        return (None, None, None, *dxs, *dws, *dbs, *[None] * n)


class TowerAlexNet(nn.Module):
    """The paper's network as two towers on two devices in one process.

    `towers[i]` holds tower i's parameters on `devices[i]`; forward copies
    activations between the devices at the exchanges only and runs both
    towers of every layer at once (a thread per tower, with half the
    machine's TVM threads each on CPU, a CUDA stream each on GPU). Build it
    from a model with `TowerAlexNet.from_model(model, devices)`, then compile it.
    """

    def __init__(self, net: Network, devices: tuple[str, str] = ("cpu", "cpu")):
        super().__init__()
        if len(devices) != TOWERS:
            raise UserError(f"give {TOWERS} devices, one per tower, got {len(devices)}")
        self.spec, self.tower_spec = net, tower_network(net)
        self.devices = [torch.device(d) for d in devices]
        self.towers = nn.ModuleList(Tower(self.tower_spec).to(d) for d in self.devices)
        self.exchanges = exchanges(net)
        self.compiled: list[CompiledNetwork] = []
        self._kernels: dict[str, list[LayerKernels]] = {}
        threads = max(1, len(os.sched_getaffinity(0)) // TOWERS)
        self._pool = ThreadPoolExecutor(TOWERS, thread_name_prefix="tower",
                                        initializer=lambda: _set_tvm_threads(threads))
        self._streams = [torch.cuda.Stream(d) if d.type == "cuda" else None for d in self.devices]

    @classmethod
    def from_model(cls, model, devices: tuple[str, str] = ("cpu", "cpu")) -> "TowerAlexNet":
        """Two towers holding `model`'s weights, split exactly."""
        towers = cls(model.spec, devices)
        towers.load_single_state_dict(model.state_dict())
        return towers.train(model.training)

    def load_single_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for tower, device, part in zip(self.towers, self.devices, split(state)):
            tower.load_state_dict({name: t.to(device) for name, t in part.items()})

    def single_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights as the single-device model names and shapes them."""
        return {name: t.cpu() for name, t in join([tower.state_dict() for tower in self.towers]).items()}

    def compile(self, target: str = "llvm", batch: int | None = None) -> "TowerAlexNet":
        self.compiled = [compile_tower(self.spec, target, batch, d) for d in self.devices]
        self._kernels = {layer.name: [LayerKernels(c, self.tower_spec, layer.name) for c in self.compiled]
                         for layer in self.tower_spec.layers}
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.compiled:
            raise UserError("compile the towers first: TowerAlexNet.compile(target)")

        def run_layer(layer, xs, masks):
            if layer.name in self.exchanges:
                xs = [torch.cat([t.to(d) for t in xs], 1) for d in self.devices]
            modules = [getattr(tower, layer.name) for tower in self.towers]
            return TowerLayers.apply(self._pool, self._streams, self._kernels[layer.name], *xs,
                                     *[m.weight for m in modules], *[m.bias for m in modules], *masks)

        xs = walk_layers(self.tower_spec, [x.to(d) for d in self.devices], run_layer, self.training)
        return torch.cat([t.to(self.devices[0]) for t in xs], 1)


def _set_tvm_threads(threads: int) -> None:
    """TVM's thread pool is per calling thread: give each tower's its share of the cores."""
    import tvm

    tvm.get_global_func("runtime.config_threadpool")(1, threads)


# -- one tower per process ---------------------------------------------------------------------


class Exchange(torch.autograd.Function):
    """Every rank's tensor, concatenated along dim 1 (all_gather).

    Backward, `replicated=False` (the exchanges inside the network): each
    rank's tower used my slice differently, so its gradient is the sum over
    ranks (all_reduce, then my slice). `replicated=True` (the logits): every
    rank computes the same loss from them, so my slice of the local gradient
    is already the whole gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group, replicated: bool):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        ctx.group, ctx.replicated, ctx.width = group, replicated, x.shape[1]
        return torch.cat(parts, 1)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        if not ctx.replicated:
            dy = dy.contiguous().clone()
            dist.all_reduce(dy, group=ctx.group)
        start = dist.get_rank(ctx.group) * ctx.width
        return dy[:, start:start + ctx.width].contiguous(), None, None


class DistributedTowerAlexNet(nn.Module):
    """This process's tower of the paper's network: rank r of a process
    group of two runs tower r, and the towers exchange activations with
    collectives (gloo on CPU, NCCL on GPU) at the paper's points only.
    Every rank is fed the same images and returns the same logits."""

    def __init__(self, net: Network, group=None):
        super().__init__()
        self.group = group
        self.rank, world = dist.get_rank(group), dist.get_world_size(group)
        self.spec, self.tower_spec = net, tower_network(net, world)
        self.tower = Tower(self.tower_spec)
        self.exchanges = exchanges(net)
        self.compiled: CompiledNetwork | None = None
        self._kernels: dict[str, LayerKernels] = {}

    def load_single_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = next(self.tower.parameters()).device
        part = split(state, dist.get_world_size(self.group))[self.rank]
        self.tower.load_state_dict({name: t.to(device) for name, t in part.items()})

    def single_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole network's weights, gathered from every rank (a collective: every rank must call it)."""
        return join(gather_states(self.tower.state_dict(), self.group))

    def single_optimizer_state_dict(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer's state as if it stepped the whole network: every
        per-parameter tensor (momentum) joined like the parameter (a collective)."""
        state = optimizer.state_dict()
        tensors = {f"{i}.{key}": t for i, entry in state["state"].items() for key, t in entry.items()
                   if isinstance(t, torch.Tensor) and t.dim() > 0}
        joined = join(gather_states(tensors, self.group))
        return {**state, "state": {i: {key: joined.get(f"{i}.{key}", t) for key, t in entry.items()}
                                   for i, entry in state["state"].items()}}

    def load_single_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        world = dist.get_world_size(self.group)
        optimizer.load_state_dict({**state, "state": {
            i: {key: t.chunk(world)[self.rank].clone() if isinstance(t, torch.Tensor) and t.dim() > 0 else t
                for key, t in entry.items()} for i, entry in state["state"].items()}})

    def compile(self, target: str = "llvm", batch: int | None = None) -> "DistributedTowerAlexNet":
        device = next(self.tower.parameters()).device
        self.compiled = compile_tower(self.spec, target, batch, device)
        self._kernels = {layer.name: LayerKernels(self.compiled, self.tower_spec, layer.name)
                         for layer in self.tower_spec.layers}
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            raise UserError("compile the tower first: DistributedTowerAlexNet.compile(target)")

        def run_layer(layer, x, mask):
            if layer.name in self.exchanges:
                x = Exchange.apply(x, self.group, False)
            module = getattr(self.tower, layer.name)
            return CompiledLayer.apply(self._kernels[layer.name], x, module.weight, module.bias, mask)

        return Exchange.apply(walk_layers(self.tower_spec, x, run_layer, self.training), self.group, True)


def gather_states(state: dict[str, torch.Tensor], group=None) -> list[dict[str, torch.Tensor]]:
    """Every rank's `state` (same names, same shapes on every rank), on every rank."""
    out = [{} for _ in range(dist.get_world_size(group))]
    for name, t in state.items():
        parts = [torch.empty_like(t) for _ in out]
        dist.all_gather(parts, t.contiguous(), group=group)
        for o, p in zip(out, parts):
            o[name] = p
    return out
