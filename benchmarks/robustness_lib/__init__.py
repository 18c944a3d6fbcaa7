"""The robustness study behind ``benchmarks/robustness.py``: does the T-Loss beat nnU-Net's loss under label noise?

One module per job:

* :mod:`.grid`          -- the noise settings, the losses, and the smoke / cpu / gpu configurations.
* :mod:`.data`          -- the synthetic ISIC-like release, converted into the nnU-Net raw dataset family, and
                           loading a converted dataset as arrays.
* :mod:`.metrics`       -- Dice per case and pooled over all test pixels.
* :mod:`.losses`        -- every study loss as a module for the in-process (MONAI) engine.
* :mod:`.monai_engine`  -- one run: train a MONAI UNet in-process, test on clean labels.
* :mod:`.nnunet_engine` -- one run through nnU-Net's own pipeline (plan, train, predict, evaluate).
* :mod:`.store`         -- the results JSON: append one run at a time, atomically; resume.
* :mod:`.summary`       -- t-intervals over seeds, the Markdown table and the plot.
"""
