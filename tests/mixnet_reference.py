"""MixNet-S/M/L as genotype strings, checked against timm's ``_gen_mixnet_s`` / ``_gen_mixnet_m``
(timm/models/efficientnet.py): ``a1.1`` (expansion conv split in 2) -> ``g2.x``, ``p1.1``
(projection split in 2) -> ``gx.2``, ``nsw`` -> ``act=swish``; se ratios relative to the block
input; ``num_features=1536`` -> ``head c1536``; relu is the default activation. MixNet-L is
``_gen_mixnet_m(channel_multiplier=1.3)``: timm's round_channels (make_divisible by 8) on the
stem and every block width, head not scaled.

Parameter counts at 224x224, 3 channels, 1000 classes (timm): 4.13M, 5.01M, 7.33M.
"""

MIXNET_S = (
    "stem c16 | ds k3 c16 | ir k3 e6 c24 s2 g2.2, ir k3 e3 c24 g2.2"
    " | ir k3.5.7 e6 c40 s2 se0.5 act=swish, ir k3.5 e6 c40 g2.2 se0.5 act=swish r3"
    " | ir k3.5.7 e6 c80 s2 g1.2 se0.25 act=swish, ir k3.5 e6 c80 g1.2 se0.25 act=swish r2"
    " | ir k3.5.7 e6 c120 g2.2 se0.5 act=swish, ir k3.5.7.9 e3 c120 g2.2 se0.5 act=swish r2"
    " | ir k3.5.7.9.11 e6 c200 s2 se0.5 act=swish, ir k3.5.7.9 e6 c200 g1.2 se0.5 act=swish r2"
    " | head c1536"
)

MIXNET_M = (
    "stem c24 | ds k3 c24 | ir k3.5.7 e6 c32 s2 g2.2, ir k3 e3 c32 g2.2"
    " | ir k3.5.7.9 e6 c40 s2 se0.5 act=swish, ir k3.5 e6 c40 g2.2 se0.5 act=swish r3"
    " | ir k3.5.7 e6 c80 s2 se0.25 act=swish, ir k3.5.7.9 e6 c80 g2.2 se0.25 act=swish r3"
    " | ir k3 e6 c120 se0.5 act=swish, ir k3.5.7.9 e3 c120 g2.2 se0.5 act=swish r3"
    " | ir k3.5.7.9 e6 c200 s2 se0.5 act=swish, ir k3.5.7.9 e6 c200 g1.2 se0.5 act=swish r3"
    " | head c1536"
)

MIXNET_L = (
    "stem c32 | ds k3 c32 | ir k3.5.7 e6 c40 s2 g2.2, ir k3 e3 c40 g2.2"
    " | ir k3.5.7.9 e6 c56 s2 se0.5 act=swish, ir k3.5 e6 c56 g2.2 se0.5 act=swish r3"
    " | ir k3.5.7 e6 c104 s2 se0.25 act=swish, ir k3.5.7.9 e6 c104 g2.2 se0.25 act=swish r3"
    " | ir k3 e6 c160 se0.5 act=swish, ir k3.5.7.9 e3 c160 g2.2 se0.5 act=swish r3"
    " | ir k3.5.7.9 e6 c264 s2 se0.5 act=swish, ir k3.5.7.9 e6 c264 g1.2 se0.5 act=swish r3"
    " | head c1536"
)

# timm's parameter counts (millions, 224x224, 3 channels, 1000 classes) and the paper's.
TIMM_PARAMS_M = {"s": 4.13, "m": 5.01, "l": 7.33}
PAPER_PARAMS_M = {"s": 4.1, "m": 5.0, "l": 7.3}
