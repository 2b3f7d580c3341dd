"""The README's drop-in: genemask masking under the plain Hugging Face Trainer, resumed across the
CM-GEMS switch. The script below is the one the closing note shows; running it here keeps it true."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

DROP_IN = '''
from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments
from genemask.genome import sample_windows
from genemask.masking import MaskingCurriculumCallback, make_collator
from genemask.tokenizer import build_tokenizer, kmerize

tokenizer = build_tokenizer(k=6)
windows = [tokenizer(kmerize(dna)) for dna in sample_windows(FASTA, n=72, length=120, seed=0)]
collator = make_collator("cmgems", tokenizer, rank_table=RANKING, seed=0,  # RANKING: 01_pmi's kmer_ranking.csv
                         switch_threshold=50.0)  # Global masking once validation perplexity plateaus
model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=128, max_position_embeddings=128))
args = TrainingArguments(OUT, max_steps=12, per_device_train_batch_size=8, learning_rate=1e-3, use_cpu=True,
                         eval_strategy="steps", eval_steps=4, save_steps=4, report_to=[], seed=0)
trainer = Trainer(model=model, args=args, train_dataset=windows[:56], eval_dataset=windows[56:],
                  data_collator=collator, processing_class=tokenizer,
                  callbacks=[MaskingCurriculumCallback(collator)])  # drives and checkpoints the curriculum
trainer.train(resume_from_checkpoint=RESUME)  # None, or e.g. f"{OUT}/checkpoint-4": the curriculum resumes too
trainer.save_model(f"{OUT}/final")  # loads with AutoModelForMaskedLM / AutoTokenizer
print("switched to Global masking after step", collator.switched_at_step)
'''

RANKING = Path(__file__).parents[1] / "results/cpu/pmi/4f0de78b864e53c4/kmer_ranking.csv"


def run_drop_in(out: Path, resume: str | None) -> dict:
    from genemask.genome import ensure_demo_genome

    namespace = {"FASTA": ensure_demo_genome(), "RANKING": RANKING, "OUT": str(out), "RESUME": resume}
    torch.manual_seed(0)
    exec(compile(DROP_IN, "drop_in.py", "exec"), namespace)
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
