import open_clip

from pipelines.tokenizer import CLIP_VOCAB_SIZE, clip_tokenizer, save_tokenizer


def test_ids_match_open_clip_up_to_end_of_text():
    ours = clip_tokenizer()
    reference = open_clip.get_tokenizer("ViT-B-32")
    for text in ["A star image in striped style.", "a photo of Van Gogh's starry night!", "checkered polka-dot héart 123"]:
        a = ours(text, padding="max_length", max_length=77, truncation=True).input_ids
        b = reference([text])[0].tolist()
        end = b.index(49407)
        assert a[: end + 1] == b[: end + 1]
        assert all(i == ours.pad_token_id for i in a[end + 1 :])  # SD 1.x pads with end-of-text
    assert len(ours) == CLIP_VOCAB_SIZE


def test_saved_folder_loads_with_plain_transformers(tmp_path):
    from transformers import CLIPTokenizer

    save_tokenizer(clip_tokenizer(), str(tmp_path))
    assert {"vocab.json", "merges.txt"} <= {p.name for p in tmp_path.iterdir()}
    loaded = CLIPTokenizer.from_pretrained(str(tmp_path))
    assert loaded("a red heart").input_ids == clip_tokenizer()("a red heart").input_ids
