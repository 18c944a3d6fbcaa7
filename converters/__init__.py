"""Dataset converters: official ISIC 2017 / Shenzhen releases -> nnU-Net v2 raw dataset families.

Each conversion writes one clean dataset plus one per noise setting (noisy training labels made
with :mod:`tloss_nnunet.noise`), hard-linking the shared images, validating every input before a
dataset is touched, and checking each result with nnU-Net's own ``verify_dataset_integrity``.
Synthetic look-alike releases in the official layouts serve tests, demos and benchmarks.

    from tloss_nnunet.converters import convert_isic2017, write_synthetic_isic2017
    root = write_synthetic_isic2017("/tmp/isic", n_train=8, n_val=3, n_test=4)
    report = convert_isic2017(root, "/tmp/nnUNet_raw", alphas=[0.3], betas=[0.5])
    print(report.format())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tloss_nnunet.lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy attributes resolve to, for type checkers and IDEs
    from tloss_nnunet.converters.family import ConversionReport
    from tloss_nnunet.converters.isic2017 import convert_isic2017, discover_isic2017
    from tloss_nnunet.converters.publish import IntegrityCheckFailed
    from tloss_nnunet.converters.shenzhen import convert_shenzhen, discover_shenzhen, split_test_cases
    from tloss_nnunet.converters.synthetic import write_synthetic_isic2017
    from tloss_nnunet.converters.synthetic_shenzhen import SyntheticShenzhen, write_synthetic_shenzhen

_LAZY = {
    "ConversionReport": "tloss_nnunet.converters.family",
    "convert_isic2017": "tloss_nnunet.converters.isic2017",
    "discover_isic2017": "tloss_nnunet.converters.isic2017",
    "IntegrityCheckFailed": "tloss_nnunet.converters.publish",
    "convert_shenzhen": "tloss_nnunet.converters.shenzhen",
    "discover_shenzhen": "tloss_nnunet.converters.shenzhen",
    "split_test_cases": "tloss_nnunet.converters.shenzhen",
    "SyntheticShenzhen": "tloss_nnunet.converters.synthetic_shenzhen",
    "write_synthetic_isic2017": "tloss_nnunet.converters.synthetic",
    "write_synthetic_shenzhen": "tloss_nnunet.converters.synthetic_shenzhen",
}

__all__ = [
    "ConversionReport",
    "IntegrityCheckFailed",
    "SyntheticShenzhen",
    "convert_isic2017",
    "convert_shenzhen",
    "discover_isic2017",
    "discover_shenzhen",
    "split_test_cases",
    "write_synthetic_isic2017",
    "write_synthetic_shenzhen",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
