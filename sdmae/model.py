"""The SDMAE model: a CvT-style masked auto-encoder with a self-distilled student head.

Input x: (N, in_chans, h, w), frames t-3, t, t+3 stacked, in [-1, 1]. The
encoder sees the visible tokens only; the teacher decoder reconstructs every
token of frame t plus an anomaly-map channel; the student head, branching off
after the first teacher decoder block, learns to reproduce the teacher.

Predictions are (N, L, p*p*out_chans): tokens row-major over the (h/p, w/p)
grid, inside a token (row in patch, column in patch, channel) -- see patchify().

Design notes:
  * CvT's depth-wise conv q/k/v projections need a grid; the encoder sees only
    the visible tokens (see tokens_to_grid). "shuffled" (the authors', the
    default) lays them out in mask order, so the encoder has little spatial
    context; "scatter" puts them back on the grid, zeros where masked, so conv
    neighbours are real neighbours. BatchNorm runs on the visible tokens only,
    so masked pixels cannot reach the encoder through its statistics.
  * Patch embedding is non-overlapping (kernel = stride = p) for the same
    reason: an overlapping kernel would show visible tokens masked pixels. Only
    the visible patches are embedded (embed_visible).
  * Choices are made by AUC on real footage, not by reconstruction error: on
    synthetic moving squares "scatter" reached a 3x lower held-out masked-token
    error than a linear mixer, yet a detector needs abnormal content
    reconstructed badly, and a model that inpaints everything well is a worse
    one (benchmarks/RESULTS.md, accuracy on real footage).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from sdmae.config import ModelConfig


# compute dtypes of set_precision: None runs in the parameters' dtype
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class ModelOutput(NamedTuple):
    teacher: torch.Tensor  # (N, L, p*p*out_chans)
    student: torch.Tensor | None  # (N, L, p*p*out_chans), None when not asked for
    mask: torch.Tensor  # (N, L) float, 1 = removed (hidden from the encoder), 0 = kept
    cls_logit: torch.Tensor | None  # (N,) "a synthetic anomaly is present", None without cls_head


# --------------------------------------------------------------------------- masking

def num_visible(L: int, ratio: float) -> int:
    """Tokens the encoder sees out of L at mask ratio ``ratio`` (at least one)."""
    return max(1, int(L * (1 - ratio)))


def _split_shuffle(ids_shuffle: torch.Tensor, n_keep: int):
    """ids_shuffle: (N, L) token ids, the first n_keep kept ->
    ids_keep (N, n_keep), ids_restore (N, L), mask (N, L) 1 = removed."""
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # position of each token in shuffled order
    mask = (ids_restore >= n_keep).float()  # 0 is keep, 1 is remove
    return ids_shuffle[:, :n_keep], ids_restore, mask


def random_masking(N: int, L: int, ratio: float, generator: torch.Generator,
                   device: torch.device | str | None = None):
    """Uniform random masks drawn from ``generator`` (device defaults to the generator's)
    -> ids_keep (N, Lv), ids_restore (N, L), mask (N, L) 1 = removed, 0 = keep."""
    if generator is None:
        raise ValueError("random_masking needs an explicit torch.Generator")
    noise = torch.rand(N, L, generator=generator, device=generator.device)
    ids_shuffle = torch.argsort(noise, dim=1).to(device or generator.device)  # ascend: first are kept
    return _split_shuffle(ids_shuffle, num_visible(L, ratio))


def resolve_masks(x: torch.Tensor, ids_keep: torch.Tensor | None, ids_restore: torch.Tensor | None,
                  generator: torch.Generator | None, L: int, ratio: float):
    """Masks given as (ids_keep, ids_restore), or drawn from ``generator`` for x's batch
    -> ids_keep (N, Lv), ids_restore (N, L), mask (N, L) 1 = removed."""
    if ids_keep is None and ids_restore is None:
        if generator is None:
            raise ValueError("pass ids_keep and ids_restore, or a generator to draw masks from")
        return random_masking(x.shape[0], L, ratio, generator, x.device)
    if ids_keep is None or ids_restore is None:
        raise ValueError("pass both ids_keep and ids_restore, or neither")
    return ids_keep, ids_restore, (ids_restore >= ids_keep.shape[1]).float()


def _key_seed(*vals: int) -> int:
    """splitmix64-style mix of ints -> seed in [0, 2**63)."""
    m64 = (1 << 64) - 1
    h = 0
    for v in vals:
        h = (h ^ (v & m64)) + 0x9E3779B97F4A7C15 & m64
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & m64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & m64
        h ^= h >> 31
    return h >> 1


def _keyed_permutations(keys, L: int, seed: int, index: int) -> torch.Tensor:
    """keys: (N,) ints -> (N, L) permutations, row n a function of (seed, index, keys[n]) only."""
    rows = []
    for k in torch.as_tensor(keys, dtype=torch.long).reshape(-1).tolist():
        g = torch.Generator().manual_seed(_key_seed(seed, index, k))
        rows.append(torch.argsort(torch.rand(L, generator=g), stable=True))
    return torch.stack(rows) if rows else torch.empty(0, L, dtype=torch.long)  # (N, L)


def seeded_masks(keys: torch.Tensor | Sequence[int], L: int, ratio: float, *, seed: int = 0,
                 index: int = 0, device: torch.device | str | None = None):
    """Deterministic test-time masks: row n depends only on (seed, index, keys[n]).

    keys: (N,) int64 per-sample keys, e.g. a frame's global index, so a frame gets
    the same mask whether it is scored alone or in any batch, on any device (drawn
    on the CPU). ``index`` selects the k-th of K independent masks per key.
    -> ids_keep (N, Lv), ids_restore (N, L), mask (N, L) 1 = removed.
    """
    ids_shuffle = _keyed_permutations(keys, L, seed, index).to(device)
    return _split_shuffle(ids_shuffle, num_visible(L, ratio))


def complementary_masks(keys: torch.Tensor | Sequence[int], L: int, ratio: float, K: int, *,
                        seed: int = 0, device: torch.device | str | None = None):
    """K deterministic masks per key that together mask every token at least once.

    One keyed permutation per sample; mask k hides the cyclic window of
    L - Lv tokens starting at k * ceil(L / K). Needs K * (L - Lv) >= L
    (K = 2 at ratio 0.5 partitions the tokens exactly).
    -> list of K (ids_keep (N, Lv), ids_restore (N, L), mask (N, L)).
    """
    n_keep = num_visible(L, ratio)
    n_mask, step = L - n_keep, -(-L // max(K, 1))
    if K < 1 or step > n_mask:
        raise ValueError(f"K={K} masks of {n_mask}/{L} tokens cannot cover every token")
    perm = _keyed_permutations(keys, L, seed, 0).to(device)  # (N, L)
    # roll so the window perm[k*step : k*step + n_mask] lands last (removed), the rest first
    return [_split_shuffle(torch.roll(perm, -(k * step + n_mask), dims=1), n_keep) for k in range(K)]


def patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """imgs: (N, C, H, W) -> (N, L, p*p*C), tokens row-major, inside (row, col, channel)."""
    N, C, H, W = imgs.shape
    x = imgs.reshape(N, C, H // p, p, W // p, p)  # (N, C, gh, p, gw, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(N, (H // p) * (W // p), p * p * C)


def unpatchify(x: torch.Tensor, p: int, grid: tuple[int, int]) -> torch.Tensor:
    """x: (N, L, p*p*C) -> (N, C, gh*p, gw*p); inverse of patchify."""
    (N, _, P), (gh, gw) = x.shape, grid
    C = P // (p * p)
    x = x.reshape(N, gh, gw, p, p, C)  # (N, gh, gw, p, p, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(N, C, gh * p, gw * p)


def weighted_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pred, target: (N, L, P); weights: (N, L), each row summing to 1 ->
    scalar mean_n sum_i w_ni * mean_j (pred_nij - target_nij)^2."""
    per_token = (pred - target).pow(2).mean(dim=-1)  # (N, L)
    return (per_token * weights).sum(dim=1).mean()


def sincos_pos_embed(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """Fixed 2D sin-cos embedding -> (L, dim), row-major; first half codes the row, second the column."""
    gh, gw = grid
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)  # (q,)
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    parts = []
    for pos in (rows, cols):
        angle = pos.reshape(-1, 1).double() * omega  # (L, q)
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1).float()  # (L, dim)


# --------------------------------------------------------------------------- blocks

class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics span every torchrun process.

    Under DistributedDataParallel each rank sees a shard of the batch; plain
    BatchNorm would normalise by shard statistics, so N processes would train
    a different model from one process with the same global batch.
    SyncBatchNorm fixes that on GPUs only; this does it on any backend (gloo
    on CPU) with an autograd-aware all_reduce of sum, sum of squares and count.
    Outside a process group it is plain BatchNorm1d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as tdist

        if not (self.training and tdist.is_available() and tdist.is_initialized()
                and tdist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        C = x.shape[1]
        local = torch.cat([x.sum(0), (x * x).sum(0), x.new_tensor([x.shape[0]])])  # (2C + 1,)
        total = all_reduce(local)  # summed over ranks, gradients flow back to each shard
        count = total[-1]
        mean = total[:C] / count
        var = (total[C:2 * C] / count - mean * mean).clamp(min=0)  # biased, as BatchNorm normalises
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * count / (count - 1).clamp(min=1), alpha=m)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def tokens_to_grid(x: torch.Tensor, ids: torch.Tensor | None, grid: tuple[int, int], mixer: str):
    """Lay a token set out as an image for a depth-wise conv, and read it back.

    x: (N, Lx, D) tokens at grid positions ids (N, Lx) (None: all L, row-major).
    "scatter": tokens go back to their grid positions, zeros where masked, so conv
    neighbours are real neighbours. "shuffled" (the authors' encoder): the visible
    tokens fill a gh x ceil(Lx/gh) grid in the order they come (the mask's random
    order), so neighbours are random tokens and the conv carries little spatial
    context. A full token set (ids None) is the grid itself either way.
    -> image (N, D, gh, w'), back: (N, C, gh, w') -> (N, Lx, C)
    """
    gh, gw = grid
    N, Lx, D = x.shape
    if ids is None or mixer != "shuffled":
        if ids is not None:
            x = x.new_zeros(N, gh * gw, D).scatter(1, ids[..., None].expand(-1, -1, D), x)  # (N, L, D)

        def back(y: torch.Tensor) -> torch.Tensor:
            y = y.flatten(2).transpose(1, 2)  # (N, L, C)
            return y if ids is None else y.gather(1, ids[..., None].expand(-1, -1, y.shape[-1]))

        # (N, L, D) memory viewed as (N, D, gh, gw) is channels-last: no copy, and
        # the fast depth-wise kernel on CPU
        return x.transpose(1, 2).reshape(N, D, gh, gw), back
    width = -(-Lx // gh)
    if width * gh != Lx:
        x = torch.cat([x, x.new_zeros(N, width * gh - Lx, D)], dim=1)  # (N, gh * width, D)

    def back_shuffled(y: torch.Tensor) -> torch.Tensor:
        return y.flatten(2).transpose(1, 2)[:, :Lx]  # (N, Lx, C)

    return x.transpose(1, 2).reshape(N, D, gh, width), back_shuffled


class ConvProjection(nn.Module):
    """CvT's convolutional projection for q, k, v: three depth-wise 3x3 convs, then
    BatchNorm, on a token set that may be a masked subset of the grid (see tokens_to_grid).

    ``fuse()`` folds the (eval) BatchNorm into the convs: in eval mode it is a
    per-channel affine after a gather that only selects positions, so it moves
    into each conv as ``w * s`` and a bias ``t``, and each conv's output goes to
    its Linear with no normalisation pass.
    """

    def __init__(self, dim: int, grid: tuple[int, int], mixer: str = "scatter"):
        super().__init__()
        self.grid, self.mixer = grid, mixer
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False) for _ in range(3))
        self.bn: GlobalBatchNorm1d | None = GlobalBatchNorm1d(3 * dim)  # channels: q's, then k's, then v's

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None):
        """x: (N, P + Lx, D), P prefix ([CLS]) tokens then tokens at grid positions
        ids (N, Lx) (None: all L in row-major order) -> q, k, v each (N, P + Lx, D)."""
        gh, gw = self.grid
        n_prefix = x.shape[1] - (gh * gw if ids is None else ids.shape[1])
        prefix, x = x[:, :n_prefix], x[:, n_prefix:]
        N, Lx, D = x.shape
        image, back = tokens_to_grid(x, ids, self.grid, self.mixer)
        qkv = [back(conv(image)) for conv in self.convs]  # 3 x (N, Lx, D)
        if self.bn is not None:  # after the gather: statistics over real tokens only
            qkv = self.bn(torch.cat(qkv, dim=-1).reshape(N * Lx, 3 * D)).reshape(N, Lx, 3 * D).split(D, dim=-1)
        if n_prefix:  # [CLS] has no place on the grid and bypasses the conv, as in CvT
            qkv = [torch.cat([prefix, t], dim=1) for t in qkv]  # (N, P + Lx, D)
        return qkv

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the eval-mode BatchNorm into the convs (in place; inference only)."""
        if self.bn is None:
            return
        bn, D = self.bn, self.convs[0].in_channels
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (3D,)
        shift = bn.bias - bn.running_mean * scale
        for j, old in enumerate(self.convs):
            conv = nn.Conv2d(D, D, 3, padding=1, groups=D, bias=True, dtype=old.weight.dtype,
                             device=old.weight.device)
            conv.weight.copy_(old.weight * scale[j * D:(j + 1) * D, None, None, None])
            conv.bias.copy_(shift[j * D:(j + 1) * D])
            self.convs[j] = conv
        self.bn = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # early v1 checkpoints stored one grouped conv (3D, 1, 3, 3) writing q, k, v of channel d
        # interleaved (3d + j), and BatchNorm over that order: split and reorder
        old = prefix + "conv.weight"
        if old in state_dict:
            weight = state_dict.pop(old)
            for j in range(3):
                state_dict[f"{prefix}convs.{j}.weight"] = weight[j::3]
            for name in ("weight", "bias", "running_mean", "running_var"):
                key = f"{prefix}bn.{name}"
                if key in state_dict:
                    state_dict[key] = torch.cat([state_dict[key][j::3] for j in range(3)])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# Query rows per block of the CPU low-precision attention: a (batch*heads, 128, T)
# score block stays cache-sized while each matmul is still large enough to be efficient.
ATTENTION_BLOCK = 128


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs)) v for (N, nh, T, hs), a block of query rows at a time.

    On a CPU, scaled_dot_product_attention takes as long in bf16 as in fp32 (its
    kernel is bound by the softmax: 17.3 vs 16.2 ms for one 800-token block),
    while bf16 matmuls run ~4.5x the fp32 ones where the CPU has avx512_bf16;
    blocked bf16 matmuls took 9.1 ms.
    """
    N, nh, T, hs = q.shape
    q = (q * hs ** -0.5).reshape(N * nh, T, hs)
    kt = k.reshape(N * nh, T, hs).transpose(1, 2)
    v = v.reshape(N * nh, T, hs)
    out = torch.empty_like(q)
    for start in range(0, T, ATTENTION_BLOCK):
        rows = slice(start, start + ATTENTION_BLOCK)
        torch.bmm(torch.softmax(torch.bmm(q[:, rows], kt), dim=-1), v, out=out[:, rows])
    return out.view(N, nh, T, hs)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, grid: tuple[int, int], token_mixer: str):
        super().__init__()
        self.heads = heads
        if token_mixer in ("scatter", "shuffled"):
            self.conv_proj = ConvProjection(dim, grid, token_mixer)
            self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        else:
            self.conv_proj = None
            self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        """x: (N, T, D), ids as in ConvProjection -> (N, T, D)."""
        N, T, D = x.shape
        if self.conv_proj is None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (N, T, D)
        else:
            q, k, v = self.conv_proj(x, ids)
            q, k, v = self.q(q), self.k(k), self.v(v)
        q, k, v = (t.reshape(N, T, self.heads, D // self.heads).transpose(1, 2)
                   for t in (q, k, v))  # (N, nh, T, hs)
        if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and not torch.is_grad_enabled():
            y = blocked_attention(q, k, v)
        else:
            y = F.scaled_dot_product_attention(q, k, v)  # (N, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(N, T, D))  # (N, T, D)


class Block(nn.Module):
    """Pre-norm transformer block with CvT attention."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, grid: tuple[int, int],
                 token_mixer: str):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, grid, token_mixer)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, T, D), ids (N, Lx) grid positions or None (full grid) -> (N, T, D)."""
        x = x + self.attn(self.norm1(x), ids)
        return x + self.mlp(self.norm2(x))


# --------------------------------------------------------------------------- model

class SDMAE(nn.Module):
    """Masked AE with a teacher decoder and a self-distilled student head.

    Weights are initialised from ``generator`` (default: a fresh one seeded 0),
    never from torch's global RNG, whose state is left untouched.
    """

    def __init__(self, cfg: ModelConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self._teacher_frozen = False
        self._fused = False
        self.precision = "fp32"  # see set_precision
        grid, mixer, p = cfg.grid, cfg.token_mixer, cfg.patch
        with torch.random.fork_rng(devices=[]):  # default inits would advance the global RNG
            # encoder
            self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.enc_dim, p, stride=p)
            self.embed_norm = nn.LayerNorm(cfg.enc_dim)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.enc_dim)) if cfg.cls_head else None
            self.blocks = nn.ModuleList(Block(cfg.enc_dim, cfg.enc_heads, cfg.mlp_ratio, grid, mixer)
                                        for _ in range(cfg.enc_depth))
            self.norm = nn.LayerNorm(cfg.enc_dim)
            self.cls_pred = nn.Linear(cfg.enc_dim, 1) if cfg.cls_head else None
            # teacher decoder
            out = p * p * cfg.out_chans
            self.decoder_embed = nn.Linear(cfg.enc_dim, cfg.dec_dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dec_dim))
            self.decoder_blocks = nn.ModuleList(
                Block(cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio, grid, mixer)
                for _ in range(cfg.dec_depth))
            self.decoder_norm = nn.LayerNorm(cfg.dec_dim)
            self.decoder_pred = nn.Linear(cfg.dec_dim, out)
            # student head: the only part trained in stage 2
            self.student = nn.ModuleDict(dict(
                block=Block(cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio, grid, mixer),
                norm=nn.LayerNorm(cfg.dec_dim),
                pred=nn.Linear(cfg.dec_dim, out)))
        pe = cfg.pos_embed
        self.register_buffer("pos_embed", sincos_pos_embed(cfg.enc_dim, grid)[None] if pe else None,
                             persistent=False)  # (1, L, enc_dim), recomputed, never stored
        self.register_buffer("decoder_pos_embed",
                             sincos_pos_embed(cfg.dec_dim, grid)[None] if pe else None,
                             persistent=False)  # (1, L, dec_dim)
        self._init_weights(generator if generator is not None else torch.Generator().manual_seed(0))

    @property
    def grid(self) -> tuple[int, int]:
        return self.cfg.grid

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_tokens

    def _init_weights(self, g: torch.Generator) -> None:
        def uniform_(w, bound):
            with torch.no_grad():
                w.uniform_(-bound, bound, generator=g)

        for m in self.modules():
            if isinstance(m, nn.Linear) or m is self.patch_embed:
                fan_out, fan_in = m.weight.shape[0], m.weight[0].numel()
                uniform_(m.weight, math.sqrt(6.0 / (fan_in + fan_out)))  # xavier, conv seen as linear
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):  # depth-wise: BatchNorm follows, scale is free
                uniform_(m.weight, 1.0 / math.sqrt(m.weight[0].numel()))
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm1d)):
                m.reset_parameters()
        with torch.no_grad():
            for t in (self.cls_token, self.mask_token):
                if t is not None:
                    t.normal_(0.0, 0.02, generator=g)

    # ---- stages

    def embed_visible(self, x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """x: (N, in_chans, h, w), ids_keep: (N, Lv) -> embedded visible tokens (N, Lv, enc_dim).

        The patch embedding (kernel = stride = p) and its LayerNorm act on each token
        alone, so only the visible patches are gathered and embedded, by one matmul:
        half the FLOPs of embedding the grid, and ~5x faster than the strided conv's
        forward and backward on a CPU (the conv's weights are used as they are).
        """
        want = (self.cfg.in_chans, *self.cfg.input_size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"expected input (N, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        N, C, H, W = x.shape
        p = self.cfg.patch
        if x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad:
            from . import kernels  # the fused copy: ~8x faster than advanced indexing (bench_kernels.py)

            patches = kernels.gather_patches(x.contiguous(), ids_keep, p)  # (N, Lv, C*p*p)
        else:  # on a GPU indexing is cheap, and the kernel's id check would synchronise the stream
            gw = W // p
            xv = x.reshape(N, C, H // p, p, gw, p)  # (N, C, gh, p, gw, p)
            n = torch.arange(N, device=x.device)[:, None]
            patches = xv[n, :, ids_keep // gw, :, ids_keep % gw, :].reshape(N, ids_keep.shape[1], -1)
        weight = self.patch_embed.weight.reshape(self.cfg.enc_dim, -1)  # (D, C*p*p), (c, row, col) order
        tok = self.embed_norm(F.linear(patches, weight, self.patch_embed.bias))  # (N, Lv, D)
        if self.pos_embed is not None:
            tok = tok + self.pos_embed[0][ids_keep]  # (N, Lv, D)
        return tok

    def forward_encoder(self, x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """x: (N, in_chans, h, w), ids_keep: (N, Lv) -> latent (N, [1 +] Lv, enc_dim),
        [CLS] first when cls_head."""
        x = self.embed_visible(x, ids_keep)  # (N, Lv, D) visible only
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (N, 1 + Lv, D)
        for blk in self.blocks:
            x = blk(x, ids_keep)
        return self.norm(x)

    def forward_cls(self, latent: torch.Tensor) -> torch.Tensor:
        """latent: (N, 1 + Lv, enc_dim) -> logit (N,) "a synthetic anomaly is present"."""
        return self.cls_pred(latent[:, 0]).squeeze(-1)

    def decoder_input(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent: (N, [1 +] Lv, enc_dim), ids_restore: (N, L) -> (N, L, dec_dim): the
        embedded visible tokens and mask tokens, in grid order."""
        x = self.decoder_embed(latent)  # (N, [1 +] Lv, Dd)
        if self.cls_token is not None:
            x = x[:, 1:]  # [CLS] serves the classification head only
        (N, Lv, Dd), L = x.shape, ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(N, L - Lv, -1)], dim=1)  # (N, L, Dd) shuffled order
        x = x.gather(1, ids_restore[..., None].expand(-1, -1, Dd))  # (N, L, Dd) grid order
        if self.decoder_pos_embed is not None:
            x = x + self.decoder_pos_embed
        return x

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor):
        """latent: (N, [1 +] Lv, enc_dim), ids_restore: (N, L) ->
        teacher_pred (N, L, p*p*out_chans), branch_hidden (N, L, dec_dim)."""
        x = self.decoder_input(latent, ids_restore)
        b = self.cfg.student_branch
        for blk in self.decoder_blocks[:b]:  # shared by teacher and student, computed once
            x = blk(x)
        branch_hidden = x
        for blk in self.decoder_blocks[b:]:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x)), branch_hidden

    def forward_student(self, branch_hidden: torch.Tensor) -> torch.Tensor:
        """branch_hidden: (N, L, dec_dim) -> student_pred (N, L, p*p*out_chans)."""
        x = self.student["block"](branch_hidden)
        return self.student["pred"](self.student["norm"](x))

    def forward(self, x: torch.Tensor, ids_keep: torch.Tensor | None = None,
                ids_restore: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None, student: bool = True) -> ModelOutput:
        """x: (N, in_chans, h, w); masks given as (ids_keep (N, Lv), ids_restore (N, L)) or
        drawn at cfg.mask_ratio from ``generator`` -> ModelOutput."""
        ids_keep, ids_restore, mask = resolve_masks(x, ids_keep, ids_restore, generator, self.num_tokens,
                                                    self.cfg.mask_ratio)
        dtype = AUTOCAST_DTYPES[self.precision]
        if dtype is None:
            teacher, stu, cls = self.run(x, ids_keep, ids_restore, student)
        else:
            with torch.autocast(x.device.type, dtype=dtype):
                outputs = self.run(x, ids_keep, ids_restore, student)
            teacher, stu, cls = (t.float() if t is not None else None for t in outputs)  # float32 out, always
        return ModelOutput(teacher=teacher, student=stu, mask=mask, cls_logit=cls)

    def run(self, x: torch.Tensor, ids_keep: torch.Tensor, ids_restore: torch.Tensor, student: bool = True):
        """The computation alone (no mask drawing, no autocast): what ``torch.compile``
        should see -> teacher (N, L, P), student or None, cls logit or None."""
        latent = self.forward_encoder(x, ids_keep)
        teacher, branch_hidden = self.forward_decoder(latent, ids_restore)
        stu = self.forward_student(branch_hidden) if student else None
        return teacher, stu, self.forward_cls(latent) if self.cls_pred is not None else None

    # ---- inference

    def fuse_for_inference(self) -> "SDMAE":
        """In place, for scoring only: eval mode, no gradients, every BatchNorm folded
        into its convs (one pass over the q/k/v tokens fewer per block). Scores equal
        the unfused model's to float rounding; training it afterwards is refused."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, ConvProjection):
                module.fuse()
        self._fused = True
        return self

    def set_precision(self, precision: str) -> "SDMAE":
        """The forward's compute dtype: "fp32" (default), "bf16" or "fp16" (autocast;
        predictions are returned in float32 either way). On a CPU, bf16/fp16 attention
        without gradients runs as blocked matmuls (see :func:`blocked_attention`)."""
        if precision not in AUTOCAST_DTYPES:
            raise ValueError(f"precision must be one of {tuple(AUTOCAST_DTYPES)}, got {precision!r}")
        self.precision = precision
        return self

    # ---- two-stage training

    def student_parameters(self):
        """Parameters trained in stage 2."""
        return self.student.parameters()

    def teacher_parameters(self):
        """Encoder, teacher decoder and cls head: everything but the student head."""
        return (p for name, p in self.named_parameters() if not name.startswith("student."))

    def freeze_teacher(self) -> "SDMAE":
        """Stage 2: teacher parameters stop learning and teacher modules stay in eval
        mode through any later train() call, so BatchNorm statistics never move."""
        for p in self.teacher_parameters():
            p.requires_grad_(False)
        self._teacher_frozen = True
        return self.train(self.training)

    def train(self, mode: bool = True) -> "SDMAE":
        if mode and getattr(self, "_fused", False):
            raise RuntimeError("this model was fused for inference (BatchNorm folded); train an unfused SDMAE")
        super().train(mode)
        if self._teacher_frozen:
            for name, child in self.named_children():
                if name != "student":
                    child.eval()
        return self
