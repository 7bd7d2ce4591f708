"""Fast inference path: only what scoring needs from a trained :class:`~sdmae.model.SDMAE`.

``FastScorer(model)`` (or ``optimize_for_inference(model)``) is a drop-in for
``model`` at test time: same ``forward(x, ids_keep, ids_restore, student=True)``,
same :class:`~sdmae.model.ModelOutput`, equal within float tolerance. It works
on a deep copy in eval mode (the trained model is left untouched) and changes
how the numbers are computed, never which numbers:

* **BatchNorm folded.** In eval mode ConvProjection's BatchNorm1d is a
  per-channel affine ``y * s + t`` applied after the gather; the gather only
  selects positions, so the affine moves into the depth-wise conv as
  ``w * s`` and a new bias ``t`` (one pass over (N, Lx, 3D) saved per block).
* **q, k, v without the interleave.** The model's grouped conv writes q, k, v
  interleaved per channel and permutes them apart (a copy of (N, Lx, 3D));
  here three depth-wise convs write them apart, straight into their Linears.
* **Shared decoder prefix once** (as the model already does), teacher and
  student branches after it, everything under ``torch.inference_mode``.

``precision="bf16"`` (or ``"fp16"``) runs the forward under autocast and
returns float32 predictions. On a CPU, scaled_dot_product_attention gains
nothing from bf16 (its kernel is bound by the softmax, not the products), so
attention there runs as blocked bf16 matrix products instead, which do gain:
with ``avx512_bf16`` a bf16 matmul ran ~4.5x the fp32 one on this project's
machine. ``precision="auto"`` (what :meth:`Detector.load` uses) picks bf16
where the hardware has native bf16 dot products and fp32 elsewhere; bf16
moves predictions by ~1e-2 relative and frame scores by ~1e-3, and left the
demo's AUCs unchanged to 3-4 decimals (numbers: ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import copy
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import SDMAE, Attention, Block, ModelOutput, resolve_masks, tokens_to_grid

__all__ = ["FastScorer", "PRECISIONS", "native_bf16", "optimize_for_inference", "physical_cores",
           "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Query rows per block of the CPU bf16 attention: a (batch*heads, 128, L) bf16
# score block stays small while each matmul is still large enough to be efficient.
_ATTENTION_BLOCK = 128


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 natively (CUDA: Ampere or newer;
    CPU: the ``avx512_bf16`` or ``amx_bf16`` instructions, read from /proc/cpuinfo)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """"auto" -> "bf16" where :func:`native_bf16`, else "fp32"; other names are checked and returned."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def _blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs)) v for (N, nh, T, hs) low-precision CPU tensors, a block of
    query rows at a time so each score block stays cache-sized."""
    N, nh, T, hs = q.shape
    q = (q * hs ** -0.5).reshape(N * nh, T, hs)
    kt = k.reshape(N * nh, T, hs).transpose(1, 2)
    v = v.reshape(N * nh, T, hs)
    out = torch.empty_like(q)
    for start in range(0, T, _ATTENTION_BLOCK):
        rows = slice(start, start + _ATTENTION_BLOCK)
        torch.bmm(torch.softmax(torch.bmm(q[:, rows], kt), dim=-1), v, out=out[:, rows])
    return out.view(N, nh, T, hs)


class _FoldedProjection(nn.Module):
    """ConvProjection (depth-wise conv + eval BatchNorm, folded) followed by the
    attention's q, k, v Linears -> q, k, v each (N, T, D).

    The model's single grouped conv interleaves q, k, v per channel (output
    channel 3d + j); here it is split into three depth-wise convs (one per j),
    each with the BatchNorm folded in, so every output is already (N, L, D)
    channels-last and goes to its Linear without a permute copy.
    """

    def __init__(self, attn: Attention):
        super().__init__()
        cp = attn.conv_proj
        conv, bn = cp.conv, cp.bn
        self.grid, self.mixer = cp.grid, cp.mixer
        D = conv.in_channels
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (3D,)
            weight = conv.weight * scale[:, None, None, None]  # (3D, 1, 3, 3)
            bias = bn.bias - bn.running_mean * scale  # (3D,)
            self.convs = nn.ModuleList()
            for j in range(3):  # output channel 3d + j is the j-th (q, k, v) of channel d
                c = nn.Conv2d(D, D, 3, padding=1, groups=D, bias=True, dtype=weight.dtype, device=weight.device)
                c.weight.copy_(weight[j::3])
                c.bias.copy_(bias[j::3])
                self.convs.append(c)
        self.linears = nn.ModuleList([attn.q, attn.k, attn.v])

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None):
        """x: (N, P + Lx, D), ids: (N, Lx) grid positions or None (full grid)."""
        gh, gw = self.grid
        n_prefix = x.shape[1] - (gh * gw if ids is None else ids.shape[1])
        prefix, x = x[:, :n_prefix], x[:, n_prefix:]
        image, back = tokens_to_grid(x, ids, self.grid, self.mixer)
        out = []
        for conv, lin in zip(self.convs, self.linears):
            y = back(conv(image))  # (N, Lx, D), BN included
            if n_prefix:
                y = torch.cat([prefix, y], dim=1)  # (N, T, D)
            out.append(lin(y))
        return out


class _FastAttention(nn.Module):
    def __init__(self, attn: Attention):
        super().__init__()
        self.heads = attn.heads
        self.folded = _FoldedProjection(attn) if attn.conv_proj is not None else None
        self.qkv = attn.qkv if attn.conv_proj is None else None
        self.proj = attn.proj

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        N, T, D = x.shape
        if self.folded is None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (N, T, D)
        else:
            q, k, v = self.folded(x, ids)
        q, k, v = (t.reshape(N, T, self.heads, D // self.heads).transpose(1, 2)
                   for t in (q, k, v))  # (N, nh, T, hs)
        if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
            y = _blocked_attention(q, k, v)
        else:
            y = F.scaled_dot_product_attention(q, k, v)  # (N, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(N, T, D))


def _fast_block(blk: Block) -> Block:
    """The block itself with its attention swapped for the folded one (same forward)."""
    blk.attn = _FastAttention(blk.attn)
    return blk


class FastScorer(nn.Module):
    """Inference-only twin of a trained SDMAE.

    Parameters
    ----------
    model : SDMAE, trained (both stages); copied, never modified
    precision : "fp32" (default), "bf16" or "fp16": the autocast dtype of the
        forward (predictions are returned as float32 either way); "auto" picks
        bf16 on hardware with native bf16 (see :func:`resolve_precision`) for
        the device the model's parameters are on
    """

    def __init__(self, model: SDMAE, *, precision: str = "fp32"):
        super().__init__()
        m = copy.deepcopy(model).eval()
        for p in m.parameters():
            p.requires_grad_(False)
        self.cfg = m.cfg
        self.precision = resolve_precision(precision, next(m.parameters()).device)
        self.autocast = _DTYPES[self.precision]
        c = m.cfg
        # encoder
        self.patch_embed = m.patch_embed  # used through SDMAE.embed_visible (visible patches only)
        self.embed_norm = m.embed_norm
        self.register_buffer("pos_embed", m.pos_embed)
        self.register_buffer("decoder_pos_embed", m.decoder_pos_embed)
        self.cls_token, self.cls_pred = m.cls_token, m.cls_pred
        self.blocks = nn.ModuleList(_fast_block(b) for b in m.blocks)
        self.norm = m.norm
        # decoder: shared prefix, then teacher and student branches
        b = c.student_branch
        self.decoder_embed, self.mask_token = m.decoder_embed, m.mask_token
        self.shared = nn.ModuleList(_fast_block(blk) for blk in m.decoder_blocks[:b])
        self.teacher_blocks = nn.ModuleList(_fast_block(blk) for blk in m.decoder_blocks[b:])
        self.decoder_norm, self.decoder_pred = m.decoder_norm, m.decoder_pred
        self.student_block = _fast_block(m.student["block"])
        self.student_norm, self.student_pred = m.student["norm"], m.student["pred"]

    @property
    def grid(self) -> tuple[int, int]:
        return self.cfg.grid

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_tokens

    def train(self, mode: bool = True) -> "FastScorer":
        if mode:
            raise RuntimeError("FastScorer is inference-only (BatchNorm is folded); train the SDMAE instead")
        return super().train(False)

    # ---- stages

    def forward_encoder(self, x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        h = SDMAE.embed_visible(self, x, ids_keep)  # (N, Lv, D), the model's own embedding
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)  # (N, 1 + Lv, D)
        for blk in self.blocks:
            h = blk(h, ids_keep)
        return self.norm(h)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor, student: bool):
        """-> teacher (N, L, P), student (N, L, P) or None."""
        h = self.decoder_embed(latent)  # (N, [1 +] Lv, Dd)
        if self.cls_token is not None:
            h = h[:, 1:]
        (N, Lv, Dd), L = h.shape, ids_restore.shape[1]
        h = torch.cat([h, self.mask_token.expand(N, L - Lv, -1)], dim=1)  # (N, L, Dd) shuffled
        h = h.gather(1, ids_restore[..., None].expand(-1, -1, Dd))  # (N, L, Dd) grid order
        if self.decoder_pos_embed is not None:
            h = h + self.decoder_pos_embed
        for blk in self.shared:  # computed once for both branches
            h = blk(h)
        t = h
        for blk in self.teacher_blocks:
            t = blk(t)
        teacher = self.decoder_pred(self.decoder_norm(t))
        s = None
        if student:
            s = self.student_pred(self.student_norm(self.student_block(h)))
        return teacher, s

    def forward(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None,
                ids_restore: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None, student: bool = True) -> ModelOutput:
        """Same arguments and output as :meth:`SDMAE.forward`."""
        ids_keep, ids_restore, mask = resolve_masks(x, ids_keep, ids_restore, generator, self.num_tokens,
                                                    self.cfg.mask_ratio)
        with torch.inference_mode():
            if self.autocast is not None:
                with torch.autocast(x.device.type, dtype=self.autocast):
                    teacher, stu, cls = self.run(x, ids_keep, ids_restore, student)
                teacher = teacher.float()
                stu = stu.float() if stu is not None else None
                cls = cls.float() if cls is not None else None
            else:
                teacher, stu, cls = self.run(x, ids_keep, ids_restore, student)
        return ModelOutput(teacher=teacher, student=stu, mask=mask, cls_logit=cls)

    def run(self, x: torch.Tensor, ids_keep: torch.Tensor, ids_restore: torch.Tensor, student: bool = True):
        """The computation alone (no grad mode, no autocast, no mask handling): what
        ``torch.compile`` should see -> teacher (N, L, P), student or None, cls logit or None."""
        latent = self.forward_encoder(x, ids_keep)
        teacher, stu = self.forward_decoder(latent, ids_restore, student)
        cls = self.cls_pred(latent[:, 0]).squeeze(-1) if self.cls_pred is not None else None
        return teacher, stu, cls


def optimize_for_inference(model: SDMAE, **kw) -> FastScorer:
    """``FastScorer(model, **kw)``: the scoring-only twin of a trained model."""
    return FastScorer(model, **kw)


def physical_cores() -> int:
    """Physical CPU cores usable by this process (SMT siblings counted once, capped by the
    CPU affinity mask); falls back to the affinity mask or os.cpu_count()."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    try:
        seen = set()
        with open("/proc/cpuinfo") as f:
            phys = core = None
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip():
                    if core is not None:
                        seen.add((phys, core))
                    phys = core = None
        if seen:
            return max(1, min(len(seen), usable))
    except OSError:
        pass
    return usable

