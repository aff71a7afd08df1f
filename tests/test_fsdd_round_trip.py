"""Griffin-Lim on real speech: the spoken digits from ../shared (skipped where absent)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vae import features as F
from vae.metrics import spectral_convergence

FSDD = Path(__file__).resolve().parents[1].parent / "shared/datasets/fsdd/recordings"
pytestmark = pytest.mark.skipif(
    not FSDD.is_dir(), reason=f"the FSDD recordings are not at {FSDD} (../shared is absent)"
)


@pytest.mark.parametrize("preset", ["fsdd", "seed"])
def test_griffin_lim_round_trip_on_fsdd(preset):
    cfg = F.get_preset(preset)
    files = sorted(FSDD.glob("*.wav"))[::50]  # 60 clips: every digit and speaker
    clips = np.stack([F.load_clips(f, cfg)[0][1] for f in files])
    feats = F.waveform_to_features(clips, cfg)  # (60, bins, frames)
    ref = F.features_to_magnitude(feats, cfg)
    gl = F.stft_magnitude(F.features_to_waveform(feats, cfg), cfg)
    zero = F.stft_magnitude(F.zero_phase_waveform(feats, cfg), cfg)
    sc_gl = spectral_convergence(ref, gl).median().item()
    sc_zero = spectral_convergence(ref, zero).median().item()
    assert sc_gl < 0.10, f"Griffin-Lim median spectral convergence {sc_gl:.3f}"
    assert sc_zero > 0.5, f"zero-phase baseline {sc_zero:.3f} should be far worse"
    assert torch.isfinite(gl).all()
