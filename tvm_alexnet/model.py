"""The user-facing AlexNet: a torch module whose layers run as TVM kernels once compiled."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import build, tuning, weights
from .autograd import CompiledLayer, LayerKernels
from .errors import UserError
from .layers import layer_modules, torch_activation, torch_lrn, walk_layers
from .preprocessing import PREPROCESSING, Preprocessing
from .runtime import CompiledNetwork, batch_chunks
from .spec import LRN_CONVENTIONS, Conv, Dense, Network, network


class AlexNet(nn.Module):
    """AlexNet of a variant ("paper", "ungrouped", "onegpu", "torchvision"),
    with the paper's ablations as switches (see spec.network: `lrn="none"`,
    `pool="non-overlapping"`, `activation="tanh"`).

    Parameters are named conv1.weight ... fc8.bias, conv weights in grouped
    OIHW layout (paper conv2: 256x48x5x5). Until `compile` is called, forward
    runs plain torch ops (the reference); afterwards it runs TVM kernels.
    """

    def __init__(self, variant: str = "paper", num_classes: int = 1000, width: float = 1.0,
                 lrn: str | None = None, pool: str | None = None, activation: str | None = None):
        super().__init__()
        self.spec: Network = network(variant, num_classes, width, lrn, pool, activation)
        for name, module in layer_modules(self.spec).items():
            setattr(self, name, module)
        self.preprocessing: Preprocessing = PREPROCESSING[variant]  # what a checkpoint's weights expect
        # trained with a mean image subtracted (train --mean): {"path", "sha256"} of its file, else None
        self.mean_image_file: dict[str, str] | None = None
        self.compiled: CompiledNetwork | None = None
        self.fixed_batches: dict[int, CompiledNetwork] = {}  # inference builds for one batch size (compile)
        self._layers: dict[str, LayerKernels] = {}  # per layer, the kernels the autograd bridges call
        self.reset_parameters()

    def reset_parameters(self, init: str = "paper") -> None:
        """init="paper": weights ~ N(0, 0.01^2), biases 1 in conv2, conv4,
        conv5, fc6, fc7 and 0 elsewhere (variants without init_std keep
        torch's default). init="torch": torch's default initialisation,
        which lets narrow networks learn in a few epochs."""
        if init not in ("paper", "torch"):
            raise UserError(f"unknown initialisation {init!r}; choose paper or torch")
        with torch.no_grad():
            for layer in self.spec.layers:
                module = getattr(self, layer.name)
                if init == "torch" or self.spec.init_std is None:
                    module.reset_parameters()
                else:
                    module.weight.normal_(0.0, self.spec.init_std)
                    module.bias.fill_(layer.init_bias)

    # -- compilation -------------------------------------------------------------------------

    def compile(self, target: str = "llvm", batch: int | None = None, out_dir: str | os.PathLike | None = None,
                tuning_log: str | os.PathLike | None = None, batches: tuple[int, ...] = ()) -> "AlexNet":
        """Compile every layer for `target` (see build.parse_target) and run
        forward through the kernels from now on. Builds are cached on disk.

        `batch=None` builds for any batch size. It also builds, for each
        batch size the `tuning_log` was tuned at, the network with the log's
        schedules, and for each of `batches` (the sizes inference will run
        at) the network at that static size where that runs other kernels
        (build.static_batch_pays: Winograd convolutions,
        packed weights); inference runs a
        batch in chunks of those sizes where they fit (see
        runtime.batch_chunks), the rest on the any-batch build. With
        `batch=N` one build for N, tuned where the log has records for N.

        The paper's two towers on two devices are built from a model by
        towers.TowerAlexNet.from_model(model, devices), then compiled."""
        tvm_target = build.parse_target(target)
        directory = build.build(self.spec, tvm_target, batch, out_dir, tuning_log if batch else None)
        # the GPU the parameters are on (placement.move them first; under torchrun cuda:LOCAL_RANK), else GPU 0
        gpu = next((p.device.index or 0 for p in self.parameters() if p.device.type == "cuda"), 0)
        self.compiled = CompiledNetwork(directory, gpu)
        self.fixed_batches = {}
        if batch is None:
            logged = set(tuning.log_batches(tuning_log, self.spec)) if tuning_log is not None else set()
            static = {size for size in batches if build.static_batch_pays(self.spec, size, tvm_target)}
            for size in sorted(logged | static):
                fixed = CompiledNetwork(build.build(self.spec, tvm_target, size, tuning_log=tuning_log), gpu)
                if fixed.manifest.tuned or size in static:
                    self.fixed_batches[size] = fixed
        self._layers = {layer.name: LayerKernels(self.compiled, self.spec, layer.name) for layer in self.spec.layers}
        return self

    def decompile(self) -> "AlexNet":
        self.compiled, self.fixed_batches, self._layers = None, {}, {}
        return self

    # -- forward -----------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> None:
        expected = self.spec.input_shape
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise UserError(f"input has shape {tuple(x.shape)}, expected (N, {', '.join(map(str, expected))}) "
                             f"for variant {self.spec.variant!r}")
        if x.dtype != torch.float32:
            raise UserError(f"input has dtype {x.dtype}, expected torch.float32")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) for images (N, 3, S, S)."""
        self.check_input(x)
        if self.compiled is None:
            return self.reference_forward(x)
        if x.device.type != self.compiled.device_type:
            raise UserError(f"input is on {x.device}, the model is compiled for {self.compiled.device_type}")
        if self.training or (torch.is_grad_enabled() and (x.requires_grad or any(
                p.requires_grad for p in self.parameters()))):
            return self._layer_by_layer(x)
        params, outputs, start = list(self.parameters()), [], 0
        for size, fixed in batch_chunks(x.shape[0], list(self.fixed_batches)):
            compiled = self.compiled if fixed is None else self.fixed_batches[fixed]
            outputs.append(compiled.forward(x[start:start + size], params))
            start += size
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _layer_by_layer(self, x: torch.Tensor, until: str | None = None, training: bool | None = None
                        ) -> torch.Tensor:
        """Forward through the autograd bridges: backward runs the compiled
        gradient kernels (the image's too, where it requires a gradient), and
        in training the dropout kernels get fresh masks."""
        def run_layer(layer, x, mask):
            module = getattr(self, layer.name)
            return CompiledLayer.apply(self._layers[layer.name], x, module.weight, module.bias, mask)

        return walk_layers(self.spec, x, run_layer, self.training if training is None else training, until)

    def features(self, x: torch.Tensor, layer: str = "fc7") -> torch.Tensor:
        """The activations after `layer` (conv1 ... fc8) for images x: its
        output as the next layer takes it (a conv layer's after its
        activation, LRN and pooling; fc6's and fc7's after their activation,
        before dropout: no dropout here, whatever the mode). Through the
        compiled kernels once compiled (differentiable, by the gradient
        kernels), else in torch ops."""
        self.check_input(x)
        if self.compiled is None:
            return self._reference(x, until=layer, training=False)
        if x.device.type != self.compiled.device_type:
            raise UserError(f"input is on {x.device}, the model is compiled for {self.compiled.device_type}")
        return self._layer_by_layer(x, until=layer, training=False)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same network in plain torch ops."""
        return self._reference(x)

    def _reference(self, x: torch.Tensor, until: str | None = None, training: bool | None = None) -> torch.Tensor:
        def run_layer(layer, x, mask):
            if isinstance(layer, Conv):
                x = self.reference_conv(layer, x)
                if layer is self.spec.convs[-1] and self.spec.avgpool is not None:
                    x = F.adaptive_avg_pool2d(x, self.spec.avgpool)
                return x
            return self.reference_dense(layer, x, mask)

        return walk_layers(self.spec, x, run_layer, self.training if training is None else training, until)

    def reference_conv(self, c: Conv, x: torch.Tensor) -> torch.Tensor:
        """Conv layer `c` (activation, LRN, max-pool) in torch ops; not the adaptive pool after conv5."""
        x = torch_activation(getattr(self, c.name)(x), c.activation)
        if c.lrn:
            p = LRN_CONVENTIONS[self.spec.lrn]
            x = torch_lrn(x, p.size, p.alpha, p.beta, p.k, self.spec.lrn_groups)
        if c.pool:
            x = F.max_pool2d(x, *self.spec.pool_window)
        return x

    def reference_dense(self, d: Dense, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Dense layer `d` (activation, then dropout with `mask` where given) in torch ops."""
        x = torch_activation(getattr(self, d.name)(x), d.activation)
        return x if mask is None else x * mask.to(x.dtype)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax of the logits)."""
        logits = self(x)
        if self.compiled is None:
            return logits.softmax(-1)
        return self.compiled.kernel("softmax")(logits)

    # -- checkpoints -------------------------------------------------------------------------

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if strict:
            weights.check_state_dict(self.spec, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def save(self, path: str | os.PathLike) -> None:
        """A safetensors checkpoint recording the variant, classes, width, LRN
        convention and the preprocessing its weights expect (its mean image too)."""
        weights.save(path, {**self.state_dict(), **weights.preprocessing_tensors(self.preprocessing)},
                     weights.metadata(self.spec, self.preprocessing, self.mean_image_file))

    @classmethod
    def load(cls, path: str | os.PathLike, **defaults) -> "AlexNet":
        """A model from a checkpoint: safetensors written by `save` (which
        records the network), or a torch state dict, ours (the network from
        `defaults`, the class count from fc8) or torchvision's alexnet."""
        state, metadata = weights.load(path)
        prep = weights.preprocessing(metadata, str(path), state)
        if any(name.startswith("features.") for name in state):
            return cls.from_torchvision(state)
        args = {**defaults, **weights.describe(metadata)}
        if not metadata and "fc8.bias" in state:
            args["num_classes"] = state["fc8.bias"].shape[0]
        model = cls(**args)
        weights.check_state_dict(model.spec, state, source=str(Path(path)))
        model.load_state_dict(state)
        model.preprocessing = prep or model.preprocessing
        model.mean_image_file = weights.mean_image(metadata, str(path))
        return model

    @classmethod
    def from_torchvision(cls, state_dict: dict[str, torch.Tensor]) -> "AlexNet":
        """The torchvision variant with torchvision.models.alexnet's weights
        (the width and class count read from conv1 and fc8)."""
        state = weights.from_torchvision_names(state_dict)
        classes = state["fc8.bias"].shape[0] if "fc8.bias" in state else 1000
        width = state["conv1.bias"].shape[0] / network("torchvision").convs[0].out_channels \
            if "conv1.bias" in state else 1.0
        model = cls("torchvision", num_classes=classes, width=width)
        weights.check_state_dict(model.spec, state, source="torchvision state dict")
        model.load_state_dict(state)
        return model
