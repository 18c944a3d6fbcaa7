"""The T-Loss paper's noisy-label protocol: exact by default, fast and parallel.

alpha selects ``int(N * alpha)`` of the sorted cases with a seeded shuffle; beta sets how strongly
each selected mask is corrupted by one of dilation, erosion or rotation + translation. With the
default seed the selections, kinds and masks are pixel-identical to the published generator
(SP-guided noisy-label segmentation, reused by the T-Loss repository); :mod:`.reference` keeps a
literal single-process version of it as the test oracle.

Typical use (what the dataset converters do)::

    plan = plan_noise(sorted_train_ids, NoiseSetting(0.7, 0.5), seed=0)
    noisy = apply_noise(clean_mask, plan[case], beta=0.5).mask
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tloss_nnunet.lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy attributes resolve to, for type checkers and IDEs
    from tloss_nnunet.noise.apply import NoisyMask, apply_noise, noise_rate
    from tloss_nnunet.noise.generate import NoiseRunResult, generate_noisy_dataset
    from tloss_nnunet.noise.mask_io import read_binary_mask, write_binary_mask
    from tloss_nnunet.noise.plan import plan_noise
    from tloss_nnunet.noise.settings import NOISE_KINDS, CaseNoise, NoiseSetting

_LAZY = {
    "NoisyMask": "tloss_nnunet.noise.apply",
    "apply_noise": "tloss_nnunet.noise.apply",
    "noise_rate": "tloss_nnunet.noise.apply",
    "NoiseRunResult": "tloss_nnunet.noise.generate",
    "generate_noisy_dataset": "tloss_nnunet.noise.generate",
    "read_binary_mask": "tloss_nnunet.noise.mask_io",
    "write_binary_mask": "tloss_nnunet.noise.mask_io",
    "plan_noise": "tloss_nnunet.noise.plan",
    "NOISE_KINDS": "tloss_nnunet.noise.settings",
    "CaseNoise": "tloss_nnunet.noise.settings",
    "NoiseSetting": "tloss_nnunet.noise.settings",
}

__all__ = [
    "NOISE_KINDS",
    "CaseNoise",
    "NoiseRunResult",
    "NoiseSetting",
    "NoisyMask",
    "apply_noise",
    "generate_noisy_dataset",
    "noise_rate",
    "plan_noise",
    "read_binary_mask",
    "write_binary_mask",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
