"""CLAP score: the cosine of CLAP's audio and text embeddings, from a transformers CLAP
directory (the one the pretrain stage writes, or a real one such as laion/clap-htsat-unfused).

    scorer = ClapScorer("runs/foundation/clap")
    scorer.score([audio], ["a high beep sounds twice"])   # tensor([0.41])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from c3llm.core.errors import CheckpointError, InputError, UnavailableError
from c3llm.core.media import Audio


class ClapScorer:
    """Audio and text embeddings ``(B, P)`` (L2-normalised) and their cosine."""

    def __init__(self, directory: str | Path, *, batch_size: int = 32):
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        directory = Path(directory).expanduser()
        if not (directory / "config.json").is_file():
            raise UnavailableError(f"no CLAP model in {directory} (config.json missing): run the pretrain stage "
                                   "or point at a transformers CLAP directory")
        try:
            self.model = ClapModel.from_pretrained(directory).eval()
            self.extractor = ClapFeatureExtractor.from_pretrained(directory)
            self.tokenizer = AutoTokenizer.from_pretrained(directory)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load CLAP from {directory}: {exc}") from exc
        self.batch_size = batch_size

    @torch.no_grad()
    def audio_embeddings(self, clips: Sequence[Audio]) -> torch.Tensor:
        """``(B, P)``: each clip's first 10 s window, as CLAP's extractor prepares it."""
        if not clips or not all(isinstance(c, Audio) for c in clips):
            raise InputError("audio_embeddings takes a non-empty list of Audio clips")
        rate, size = int(self.extractor.sampling_rate), self.extractor.nb_max_samples
        out = []
        for start in range(0, len(clips), self.batch_size):
            windows = [c.to(rate, channels=1).waveform[0, :size].double().numpy() for c in clips[start:start + self.batch_size]]
            batch = self.extractor(windows, sampling_rate=rate, return_tensors="pt", padding="repeatpad",
                                   truncation="fusion" if self.model.config.audio_config.enable_fusion else "rand_trunc")
            features = batch["input_features"].float()
            audio = self.model.audio_model(input_features=features, is_longer=torch.zeros(len(windows), 1, dtype=torch.bool))
            out.append(self.model.audio_projection(audio.pooler_output))
        return F.normalize(torch.cat(out), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """``(B, P)`` caption embeddings."""
        if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InputError("text_embeddings takes a non-empty list of non-empty strings")
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                   return_tensors="pt")
            text = self.model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            out.append(self.model.text_projection(text.pooler_output))
        return F.normalize(torch.cat(out), dim=-1)

    def score(self, clips: Sequence[Audio], texts: Sequence[str]) -> torch.Tensor:
        """``(B,)`` CLAP score of each (clip, text) pair: cosine in [-1, 1]."""
        if len(clips) != len(texts):
            raise InputError(f"score needs as many texts as clips, got {len(texts)} texts for {len(clips)} clips")
        return (self.audio_embeddings(clips) * self.text_embeddings(texts)).sum(-1)

    def retrieval(self, clips: Sequence[Audio], texts: Sequence[str]) -> dict[str, float]:
        """Audio -> text retrieval among the pairs: top-1 / top-5 accuracy, chance, mean matched score."""
        sims = self.audio_embeddings(clips) @ self.text_embeddings(texts).T  # (B, B)
        rank = (sims > sims.diag()[:, None]).sum(1)  # (B,) texts scoring above the true one
        n = len(clips)
        return {"top1": round(float((rank == 0).float().mean()), 4), "top5": round(float((rank < 5).float().mean()), 4),
                "chance_top1": round(1 / n, 4), "matched_score": round(float(sims.diag().mean()), 4),
                "unmatched_score": round(float((sims.sum() - sims.diag().sum()) / max(1, n * n - n)), 4)}
