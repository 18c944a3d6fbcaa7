"""One study framework: a study is a short declaration on top of these modules, one job each.

* :mod:`.grid`      -- the noise grid and its setting labels, from :mod:`tloss_nnunet.noise.settings`.
* :mod:`.config`    -- :class:`~.config.StudyConfig`, the one configuration type (data, network width, schedule).
* :mod:`.arms`      -- the arm registry: arm name -> nnU-Net trainer class (and its schedule twins).
* :mod:`.data`      -- the synthetic ISIC-like release converted into the nnU-Net raw dataset family; arrays.
* :mod:`.metrics`   -- Dice per case, mean and pooled.
* :mod:`.inprocess` -- the in-process engine: real nnU-Net trainers fed seeded batches (paired, deterministic).
* :mod:`.commands`  -- the stock-command engine: ``nnUNetv2_plan_and_preprocess`` / ``_train`` / ``_predict`` /
  ``_evaluate_folder``.
* :mod:`.store`     -- the results JSON, each study declaring its record fields; resume.
* :mod:`.driver`    -- runs a study's runs on the project's process pool, keeps going past a failed run.
* :mod:`.cli`       -- the arguments every study shares.
* :mod:`.selection` -- the rules that keep a checkpoint from a run's log (last, nnU-Net's best, end of early
  learning).
* :mod:`.stats`     -- t-intervals over seeds (paired) and over datasets, Welch; clipping to a bounded range.
* :mod:`.plots`     -- matplotlib (Agg) figures written atomically.
"""
