namespace JestMesh.Data.WebDataset;

/// <summary>How a sample's image bytes are encoded.</summary>
public enum ImageEncoding
{
    Png,
    Jpeg,
}

/// <summary>
/// One WebDataset sample as stored: KEY.png or KEY.jpg (KEY.jpeg), KEY.txt, optionally KEY.json.
/// </summary>
/// <param name="Shard">File name of the shard (no directory).</param>
/// <param name="Key">Sample key inside the shard (the entry name up to the first dot of its file name).</param>
/// <param name="Image">The encoded image bytes.</param>
/// <param name="Encoding">PNG or JPEG.</param>
/// <param name="Caption">The caption text, trimmed.</param>
/// <param name="Json">KEY.json as text, or null.</param>
public sealed record WdsSample(string Shard, string Key, byte[] Image, ImageEncoding Encoding, string Caption, string? Json)
{
    public long Id => SourceKeys.Id(Shard, Key);

    public string Name => SourceKeys.Name(Shard, Key);
}

/// <summary>A sample (or the rest of a shard) that was not streamed, and why.</summary>
public sealed record WdsSkip(string Shard, string Key, string Reason)
{
    public override string ToString() => $"skipped {SourceKeys.Name(Shard, Key)}: {Reason}";
}

/// <summary>A decoder refused a sample (image does not decode, caption not usable): the source skips and counts it.</summary>
public sealed class SampleRejectedException(string reason) : Exception(reason);
