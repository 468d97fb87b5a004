namespace JestMesh.Learning.Tests;

[Trait("Tier", "Unit")]
public sealed class EmbeddingCacheTests
{
    private static float[] Row(int seed, int dim) => Enumerable.Range(0, dim).Select(i => (float)(seed * 1000 + i)).ToArray();

    [Fact]
    public void Hit_returns_the_rows_and_the_oldest_entry_is_dropped_when_full()
    {
        var cache = new EmbeddingCache(capacity: 3, dim: 4);
        for (var id = 1; id <= 4; id++)
        {
            cache.Add(id, Row(id, 4), Row(-id, 4));
        }
        var image = new float[4];
        var text = new float[4];

        Assert.False(cache.TryGet(1, image, text));
        Assert.True(cache.TryGet(4, image, text));
        Assert.Equal(Row(4, 4), image);
        Assert.Equal(Row(-4, 4), text);
        Assert.Equal(3, cache.Count);
    }

    [Fact]
    public void Persisted_cache_reloads_for_the_same_checkpoint_only()
    {
        var path = Path.Combine(Path.GetTempPath(), $"jestmesh-cache-{Guid.NewGuid():N}.bin");
        try
        {
            var cache = new EmbeddingCache(capacity: 8, dim: 2);
            cache.Add(10, [1, 2], [3, 4]);
            cache.Add(11, [5, 6], [7, 8]);
            cache.Save(path, "abc");

            var same = new EmbeddingCache(capacity: 8, dim: 2);
            var outcome = same.Load(path, "abc");
            var other = new EmbeddingCache(capacity: 8, dim: 2);
            var refused = other.Load(path, "def");

            var image = new float[2];
            var text = new float[2];
            Assert.True(same.TryGet(11, image, text));
            Assert.Equal([5f, 6f], image);
            Assert.Equal([7f, 8f], text);
            Assert.Equal("loaded 2 cached embeddings from " + path, outcome);
            Assert.Equal(0, other.Count);
            Assert.Contains("ignored", refused, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
