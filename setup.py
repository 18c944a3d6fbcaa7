"""Package discovery; everything else is in setup.cfg, which cannot give discovered folders other names.

Every package under ``tloss_nnunet/``, ``noise/`` and ``converters/`` is found, never listed by hand
(``tests/test_wheel.py`` builds the wheel and checks that it holds every module). The user-facing folders
``noise/`` and ``converters/`` install as ``tloss_nnunet.noise`` / ``tloss_nnunet.converters``: a distribution
that installed a top-level ``noise`` would collide with a popular package of that name.
"""

from setuptools import find_packages, setup

#: installed package -> the top-level folder it comes from
WINGS = {"tloss_nnunet.noise": "noise", "tloss_nnunet.converters": "converters"}

packages = find_packages(include=["tloss_nnunet", "tloss_nnunet.*"])
for name, folder in WINGS.items():
    packages += [name + found[len(folder):] for found in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages, package_dir=WINGS)
