"""Settings from the environment: an embedding model is a folder with a config, named by its folder unless
told; a wrong path stops the start with a message naming the variable."""

import pytest

from server.config import SettingsError, load_settings


def test_an_embedding_model_is_a_model_folder(tmp_path, monkeypatch):
    folder = tmp_path / "all-MiniLM-L6-v2"
    folder.mkdir()
    monkeypatch.setenv("GXFT_EMBEDDING_MODEL", str(folder))
    with pytest.raises(SettingsError, match="GXFT_EMBEDDING_MODEL: .* is not a model folder"):
        load_settings(data_dir=str(tmp_path / "data"))
    (folder / "config.json").write_text("{}")
    settings = load_settings(data_dir=str(tmp_path / "data"))
    assert (settings.embedding_model, settings.embedding_model_name) == (folder, "all-MiniLM-L6-v2")
    name = "sentence-transformers/all-MiniLM-L6-v2"
    monkeypatch.setenv("GXFT_EMBEDDING_MODEL_NAME", name)
    assert load_settings(data_dir=str(tmp_path / "data")).embedding_model_name == name
    monkeypatch.delenv("GXFT_EMBEDDING_MODEL")
    assert load_settings(data_dir=str(tmp_path / "data")).embedding_model is None
