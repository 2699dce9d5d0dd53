"""The dashboard and the model page show one epoch's validation scores, never a training loss."""

from __future__ import annotations

from biosegment.webui.summaries import best_metrics


def test_scores_come_from_the_epoch_with_the_lowest_validation_loss_without_training_loss():
    history = [
        {"epoch": 0, "val_loss": 0.40, "mean_dice": 0.81, "elapsed_s": 1.0},
        {"epoch": 1, "train_loss": 0.10, "val_loss": 0.55, "mean_dice": 0.86},
        {"epoch": 2, "train_loss": 0.05, "val_loss": 0.35, "mean_dice": 0.79, "dice": {"a": 1}},
    ]
    # Epoch 2 is the one kept: its Dice, not the highest Dice of another epoch.
    assert best_metrics(history) == {"val_loss": 0.35, "mean_dice": 0.79}


def test_a_history_without_validation_shows_no_training_loss():
    assert best_metrics([{"epoch": 1, "train_loss": 0.2}, {"epoch": 2, "train_loss": 0.1}]) == {}
