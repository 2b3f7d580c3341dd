"""The README's drop-in: genemask masking under the plain Hugging Face Trainer, resumed across the
CM-GEMS switch. The block is read from README.md and run here, so the README's lines stay true."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import committed_ranking

README = Path(__file__).parents[1] / "README.md"
#: The line of the block that names the user's inputs: the test gives its own.
INPUTS = "FASTA, RANKING, OUT, RESUME = "


def drop_in_block() -> str:
    """README.md's drop-in block without its inputs line (one home: the README)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (block,) = [b for b in blocks if "MaskingCurriculumCallback" in b]
    first, _, rest = block.partition("\n")
    assert first.startswith(INPUTS), first
    return rest


RANKING = committed_ranking()


def run_drop_in(out: Path, resume: str | None) -> dict:
    from genemask.genome import ensure_demo_genome

    namespace = {"FASTA": ensure_demo_genome(), "RANKING": RANKING, "OUT": str(out), "RESUME": resume}
    torch.manual_seed(0)
    exec(compile(drop_in_block(), "README.md drop-in", "exec"), namespace)
    return namespace


def test_drop_in_resumes_across_the_cmgems_switch(tmp_path, one_torch_thread):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    whole = run_drop_in(tmp_path / "whole", None)
    switch = whole["collator"].switched_at_step
    assert switch == 8  # validation perplexity 4087, 4066 (|change| 21 < 50), ...: Global from step 8 on
    resumed = run_drop_in(tmp_path / "resumed", str(tmp_path / "whole" / "checkpoint-4"))
    assert resumed["collator"].switched_at_step == switch
    assert resumed["collator"].perplexities == whole["collator"].perplexities
    final_whole = AutoModelForMaskedLM.from_pretrained(tmp_path / "whole" / "final")
    final_resumed = AutoModelForMaskedLM.from_pretrained(tmp_path / "resumed" / "final")
    for (name, a), b in zip(final_whole.state_dict().items(), final_resumed.state_dict().values()):
        assert torch.equal(a, b), name  # the same masks, step for step, give the same weights
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "whole" / "final")
    assert tokenizer("AAAAAA AAAAAT")["input_ids"] == [2, 5, 6, 3]
