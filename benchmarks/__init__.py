"""The project's studies, on one framework (:mod:`benchmarks.studykit`); run each as ``python -m benchmarks.<study>``.

Studies: :mod:`~benchmarks.memorisation` (does a trainer fit corrupted masks, and when), :mod:`~benchmarks.robustness`
(the loss grid through nnU-Net's stock commands; its committed table is the memorisation regime's grid),
:mod:`~benchmarks.label_audit` (do the audit's scores find the corrupted cases), :mod:`~benchmarks.gpu_check`
(the GPU path in one command), the speed scripts (``loss_speed``, ``loss_compile``, ``trainer_overhead``,
``noise_speed``, ``convert_speed``, ``audit_speed``) and :mod:`~benchmarks.fault_injection`. Each study's protocol
is ``study-protocol.md``; results and their provenance are in ``results/``.
"""
