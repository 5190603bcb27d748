def test_conv_stem_embeds_patches_across_their_borders(make_config) -> None:  # type: ignore[no-untyped-def]
    from himtok_mask_tokenizer.modeling import ConvStem

    torch.manual_seed(0)
    stem = ConvStem(1, 24, 8)
    assert [conv.out_channels for conv in stem.layers] == [16, 24, 24]
    x = torch.zeros(1, 1, 32, 32)
    assert stem(x).shape == (1, 24, 4, 4)
    # A pixel just left of a patch border changes the embedding of the patch to its right too.
    bumped = x.clone()
    bumped[0, 0, 3, 7] = 1.0
    delta = (stem(bumped) - stem(x)).abs()[0].sum(0)
    assert float(delta[0, 1]) > 0
    with pytest.raises(ValueError, match="power of two"):
        ConvStem(1, 24, 6)
    model = MaskTokenizer(make_config(pixel_head="light", encoder_stem="conv"))
    assert model.encode(torch.zeros(1, 64, 64)).shape == (1, 32)
    with pytest.raises(ValueError, match="encoder_stem"):
        make_config(encoder_stem="cnn")
