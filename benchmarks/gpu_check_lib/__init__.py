"""The one GPU check (``python -m benchmarks.gpu_check``): settings, its four sections, and the results record.

* :mod:`.settings`: sizes and budgets of the full (CUDA) run and of the CPU smoke run.
* :mod:`.record`: runs a section under its budget, keeps its error without losing the others, writes JSON + Markdown.
* :mod:`.loss_section`: T-Loss vs nnU-Net's Dice+CE vs the softmax floor, fp32 / fp16 / bf16 logits.
* :mod:`.overhead_section`: ``benchmarks/trainer_overhead.py``'s interleaved ``train_step`` timing, AMP + compile.
* :mod:`.training_section`: the stock ``nnUNetv2_train`` / ``--c`` / ``predict`` / ``evaluate`` of both trainers.
* :mod:`.scaler_section`: a non-finite gradient under the GradScaler skips the network's and nu's steps.
"""
