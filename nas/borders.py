"""How far a border padding mode can pad a feature map: the one statement of the limit.

Stdlib only, below both the DSL (which checks a space without importing torch) and the
layers (which check at run time); an exported ``model.py`` carries it verbatim.
"""

from __future__ import annotations

# How far a border mode can pad an axis of n pixels, as torch's F.pad accepts it (checked by
# running it): reflect mirrors the inside of the map (pad < n), circular wraps the map around
# (pad <= n).
_BORDER_PAD_RULES = {"reflect": "<", "circular": "<="}


def border_pad_rule(padding: str) -> str | None:
    """``"<"`` or ``"<="``: how a pad of ``padding`` mode must compare to the size it pads;
    ``None`` for the modes that take any pad (zeros, replicate, partial)."""
    return _BORDER_PAD_RULES.get(padding)


def border_pad_fits(padding: str, pad: int, height: int, width: int) -> bool:
    """Whether ``padding`` mode can pad ``pad`` pixels on a ``height`` x ``width`` map."""
    rule = border_pad_rule(padding)
    if rule == "<":
        return pad < height and pad < width
    if rule == "<=":
        return pad <= height and pad <= width
    return True


__all__ = ["border_pad_fits", "border_pad_rule"]
