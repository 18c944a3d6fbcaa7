"""The memorisation study: does a trainer fit the corrupted masks of noisy training labels, and when?"""
