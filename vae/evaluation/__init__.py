"""How good it sounds: reconstruction figures, the judge that listens, distances between sets.

Public modules (what code outside this package may import):
- ``evaluate``: ``evaluate_reconstruction``, ``evaluate_with_judge``, ``realism_rows``.
- ``judge``: ``Judge``, ``JudgeConfig``, ``save_judge``.
- ``judge_training``: ``train_judge``, ``JudgeTraining``.
- ``distribution``: ``frechet_distance``, ``inception_score``, ``set_figures``.
"""

__all__ = ["distribution", "evaluate", "judge", "judge_training"]
