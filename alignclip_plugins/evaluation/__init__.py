"""Evaluation of checkpoints: metric functions, checkpoint loading, task runners."""
