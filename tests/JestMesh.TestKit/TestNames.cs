namespace JestMesh.TestKit;

/// <summary>Unique queue prefixes and job names, so tests never share broker state.</summary>
public static class TestNames
{
    public static string Unique(string stem) => $"t-{stem}-{Guid.NewGuid():N}";
}
