"""Fine-tuning on call/response pairs: the answer alone carries loss, the pair loss falls,
and an interrupted fine-tuning run resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from improv.cli import main
from improv.corpus.folder import read_folder
from improv.corpus.phrases import segment
from improv.model.checkpoint import load_model, read_checkpoint
from improv.model.dataset import TokenData, build_token_data, solo_pairs
from improv.model.evaluate import pair_tasks
from improv.model.train import Trainer, TrainOptions, resume_path, train_run
from improv.tokens import VOCAB, Role, StreamEncoder

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def base(generated_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM trained briefly on whole solos: the checkpoint to fine-tune."""
    out = tmp_path_factory.mktemp("base") / "lstm.pt"
    args = ["train", "--data", str(generated_corpus), "--size", "xs", "--steps", "30"]
    args += ["--batch-size", "8", "--seq-len", "64", "--threads", "1", "--out", str(out)]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def data(generated_corpus: Path) -> TokenData:
    solos = read_folder(generated_corpus).solos
    return build_token_data(solos, augment=False, pairs=True, pair_context=2)[0]


def _options(base: Path, steps: int) -> TrainOptions:
    return TrainOptions(
        size="xs",
        steps=steps,
        batch_size=8,
        seq_len=128,
        lr=1e-2,
        warmup=2,
        eval_every=10,
        dropout=0.0,
        finetune=str(base),
        pairs=True,
        pair_context=2,
        solo_mix=0.25,
    )


def test_pairs_are_posed_as_improv_eval_poses_them(generated_corpus: Path) -> None:
    solos = read_folder(generated_corpus).solos[:4]
    examples = [e for solo in solos for e in solo_pairs(solo)]
    tasks = pair_tasks(solos)
    assert examples and len(examples) == len(tasks)
    for (seq, answer), task in zip(examples, tasks, strict=True):
        encoder = StreamEncoder(task.key.tonic, task.metre, task.chords)
        given = encoder.header() + encoder.encode_notes(task.call, Role.PERFORMER)
        given += encoder.start_phrase(Role.AGENT, task.start)
        assert seq[:answer].tolist() == given
        assert seq[-1] == VOCAB.phrase_end


def test_earlier_phrases_come_before_the_call(generated_corpus: Path) -> None:
    solo = read_folder(generated_corpus).solos[0]
    bare = solo_pairs(solo, context=0)
    cycled = solo_pairs(solo, context=2)
    assert len(bare) == len(cycled) > 3
    performer, agent = VOCAB.role(Role.PERFORMER), VOCAB.role(Role.AGENT)
    for n, ((short, a), (long, b)) in enumerate(zip(bare, cycled, strict=True)):
        assert long[b:].tolist() == short[a:].tolist()  # the same answer
        roles = [t for t in long[:b].tolist() if t in (performer, agent)]
        assert roles[-2:] == [performer, agent]  # the call is the performer's
        assert len(roles) <= 2 + n % 3
    assert any(len(long) > len(short) for (short, _), (long, _) in zip(bare, cycled, strict=True))
    assert len(segment(solo)) > 3


def test_only_the_answer_carries_loss(base: Path, data: TokenData) -> None:
    trainer = Trainer(data, _options(base, 1), CPU, read_checkpoint(base))
    pairs = data.pairs
    assert pairs is not None
    picks = list(range(min(16, len(pairs))))
    x, y, *_ = trainer.pair_windows(pairs, picks)
    agent = VOCAB.role(Role.AGENT)
    for row, i in enumerate(picks):
        seq, answer = pairs.seqs[i].astype(np.int64), int(pairs.answers[i])
        offset = max(0, len(seq) - 128)
        start = answer - offset
        assert seq[answer - 1] == agent  # the answer's phrase token is given, not scored
        assert (y[row, :start] == -1).all()  # the call and its context: no loss
        assert y[row, start : len(seq) - offset].tolist() == seq[answer:].tolist()
        assert (y[row, len(seq) - offset :] == -1).all()  # padding
        assert x[row, start].item() == agent  # the model sees the call before the answer


def test_finetuning_lowers_the_pair_loss(base: Path, data: TokenData) -> None:
    trainer = Trainer(data, _options(base, 40), CPU, read_checkpoint(base))
    reference = load_model(base, device="cpu").module.state_dict()
    for name, tensor in trainer.model.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], msg=name)  # starts from base
    before = trainer.pair_validation_loss()
    assert trainer.run() is True
    after = trainer.pair_validation_loss()
    assert before is not None and after is not None
    assert after < 0.9 * before
    assert any("val_pair_loss" in h for h in trainer.history)


def test_interrupted_finetuning_resumes(base: Path, data: TokenData, tmp_path: Path) -> None:
    whole = Trainer(data, _options(base, 10), CPU, read_checkpoint(base))
    whole.run()

    out = tmp_path / "ft.pt"
    options = _options(base, 10)
    steps: list[int] = []
    first = train_run(
        data,
        options,
        out=out,
        device=CPU,
        on_progress=lambda p: steps.append(p.step),
        should_stop=lambda: len(steps) >= 4,
    )
    assert first.finished is False and resume_path(out).is_file()
    second = train_run(data, options, out=out, device=CPU, resume=True)
    assert second.finished is True and not resume_path(out).exists()
    loaded = load_model(out, device="cpu")
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(loaded.module.state_dict()[name], tensor, msg=name)
    ckpt = loaded.checkpoint
    assert ckpt.training["steps"] == 10
    assert ckpt.training["options"]["pairs"] is True
    assert ckpt.training["finetuned_from"]["path"] == str(base)
    assert ckpt.metrics["val_pair_loss"] > 0
    # the baseline is the fine-tuned checkpoint's, kept as it was
    kept = loaded.baseline().score_many([data.val[0]])[0]
    np.testing.assert_array_equal(kept, load_model(base).baseline().score_many([data.val[0]])[0])
    assert loaded.baseline().vocab_size == loaded.stream().vocab_size


def test_finetune_command_records_its_options(
    base: Path, generated_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ft.pt"
    args = ["train", "--data", str(generated_corpus), "--finetune", str(base), "--pairs"]
    args += ["--steps", "3", "--batch-size", "4", "--seq-len", "64", "--threads", "1"]
    assert main([*args, "--selection", "--out", str(out)]) == 0
    ckpt = read_checkpoint(out)
    assert ckpt.arch == "lstm" and ckpt.size == "xs"
    assert "--finetune" in ckpt.training["command"] and "--pairs" in ckpt.training["command"]
    assert ckpt.training["options"]["lr"] == 1e-3  # the fine-tuning default
    assert ckpt.data["attribution"] and ckpt.data["train_pairs"] > 0
    assert ckpt.data["validated_on"].startswith("selection")
    assert main([*args, "--resume", "--out", str(tmp_path / "absent.pt")]) == 2
    assert main([*args, "--solo-mix", "1.5", "--out", str(out)]) == 2
    bad = ["train", "--data", str(generated_corpus), "--finetune", str(tmp_path / "no.pt")]
    assert main([*bad, "--pairs", "--out", str(out)]) == 2
