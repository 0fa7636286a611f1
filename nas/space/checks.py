"""Cross-key checks of one block position, with the real channel counts and feature-map sizes.

A value can be fine on its own and impossible in its stage: a partition that leaves a
kernel group without a channel, more kernel groups than channels, group counts larger
than a 1x1 conv's channels, a border padding wider than the feature map. These checks
run every combination of the position's choices against the widths that feed it and
name the key that has to change.
"""

from __future__ import annotations

from nas.errors import GenotypeError
from nas.borders import border_pad_fits, border_pad_rule
from nas.genotype import split_channels
from nas.space.source import Reporter
from nas.space.spec import BlockChoices


def downscale(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Feature-map size after a stride: ``(H - 1) // stride + 1``, the same for a 'same'-padded
    strided conv and for the builder's max/avg pooling (odd kernel >= stride, 'same' padding)."""
    return tuple((s - 1) // stride + 1 for s in size)  # type: ignore[return-value]


def check_block(
    rep: Reporter,
    stage_path: str,
    bc: BlockChoices,
    in_widths: tuple[int, ...],
    widths: tuple[int, ...],
    resolution: tuple[int, int],
    input_size: tuple[int, int],
) -> None:
    """Every cross-key check of ``bc`` in the stage at ``stage_path``."""
    _check_ds_groups(rep, stage_path, bc)
    for kind in bc.type:
        expansions = bc.expansion if kind == "ir" else (1.0,)
        for e in expansions:
            for cin in in_widths:
                mid = cin if kind == "ds" else max(1, int(round(cin * e)))
                _check_group_counts(rep, stage_path, bc, kind, cin, mid, widths)
                _check_kernel_groups(rep, stage_path, bc, kind, cin, mid, e)
    _check_border_padding(rep, stage_path, bc, resolution, input_size)


def _check_ds_groups(rep: Reporter, stage_path: str, bc: BlockChoices) -> None:
    if "ds" not in bc.type:
        return
    for g in bc.pw_groups:
        if g[0] != 1:
            raise rep.error(
                bc.sources["pw_groups"],
                f"pw_groups {list(g)} with block type 'ds' (used in {stage_path}): a depthwise-separable "
                "block has no expansion conv, its expand group count must be 1",
            )


def _check_group_counts(
    rep: Reporter, stage_path: str, bc: BlockChoices, kind: str, cin: int, mid: int, widths: tuple[int, ...]
) -> None:
    """The 1x1 convs' group counts fit their channels (``cin -> mid`` expands, ``mid -> cout`` projects)."""
    for g in bc.pw_groups:
        if kind == "ir" and g[0] > min(cin, mid):
            raise rep.error(
                bc.sources["pw_groups"],
                f"expand group count {g[0]} exceeds the channels of the expansion conv "
                f"({cin} -> {mid}) in {stage_path}",
            )
        for cout in widths:
            if g[1] > min(mid, cout):
                raise rep.error(
                    bc.sources["pw_groups"],
                    f"project group count {g[1]} exceeds the channels of the projection conv "
                    f"({mid} -> {cout}) in {stage_path}",
                )


def _check_kernel_groups(
    rep: Reporter, stage_path: str, bc: BlockChoices, kind: str, cin: int, mid: int, e: float
) -> None:
    """Each kernel group of the mixed conv (``mid`` channels) gets at least one channel."""
    src = bc.sources
    for kernels in bc.kernels:
        if len(kernels) > mid:
            raise rep.error(
                src["kernels"],
                f"{len(kernels)} kernel groups {_k(kernels)} but only {mid} channels in the mixed conv "
                f"of a {kind} block in {stage_path} ({_mid_text(kind, cin, e)})",
            )
        partitions = bc.partition if len(kernels) > 1 else ("equal",)
        for partition in partitions:
            try:
                split_channels(mid, len(kernels), partition)
            except GenotypeError:
                sizes = _raw_split(mid, len(kernels), partition)
                raise rep.error(
                    src["partition"] if partition != "equal" else src["kernels"],
                    f"partition {partition!r} of {mid} channels ({_mid_text(kind, cin, e)}) into "
                    f"{len(kernels)} kernel groups {_k(kernels)} leaves a group with no channel "
                    f"{sizes} in {stage_path}",
                ) from None


def _check_border_padding(
    rep: Reporter, stage_path: str, bc: BlockChoices, resolution: tuple[int, int], input_size: tuple[int, int]
) -> None:
    """Reflect/circular padding reads real pixels: its pad must fit the stage's feature map
    (the limit is :func:`nas.borders.border_pad_fits`, the one the layers enforce)."""
    h, w = resolution
    for padding in bc.padding:
        rule = border_pad_rule(padding)
        if rule is None:
            continue
        for d in bc.dilation:
            for kernels in bc.kernels:
                pad = d * (max(kernels) - 1) // 2
                if not border_pad_fits(padding, pad, h, w):
                    raise rep.error(
                        bc.sources["padding"],
                        f"padding {padding!r} with kernel {max(kernels)} and dilation {d} pads {pad} pixels, but the "
                        f"feature map of {stage_path} is only {h}x{w} (declared input {input_size[0]}x{input_size[1]}); "
                        f"{padding} padding needs pad {rule} feature-map size",
                    )


def _k(kernels: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(k) for k in kernels) + "]"


def _mid_text(kind: str, cin: int, e: float) -> str:
    if kind == "ds":
        return f"input width {cin}"
    return f"input width {cin} x expansion {format(e, 'g')}"


def _raw_split(channels: int, groups: int, partition: str) -> list[int]:
    """The group sizes ``split_channels`` would give, empty groups included (for the message)."""
    if partition == "equal":
        sizes = [channels // groups] * groups
        sizes[0] += channels - sum(sizes)
        return sizes
    sizes = [channels // 2 ** (i + 1) for i in range(groups - 1)]
    sizes.append(channels - sum(sizes))
    return sizes


__all__ = ["check_block", "downscale"]
