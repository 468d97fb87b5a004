namespace JestMesh.Selection.Tests;

[Trait("Tier", "Unit")]
public sealed class RecordedSuperBatchesTests
{
    [Fact]
    public void A_super_batch_is_remembered_as_long_as_the_log_keeps_its_record_and_no_longer()
    {
        var set = new RecordedSuperBatches(TimeSpan.FromHours(1));
        set.Add("j", "j/0", unixSeconds: 1_000, nowUnixSeconds: 1_000);
        set.Add("j", "j/1", unixSeconds: 2_000, nowUnixSeconds: 2_000);
        set.Add("k", "j/0", unixSeconds: 2_000, nowUnixSeconds: 2_000);

        Assert.True(set.Contains("j", "j/0"));
        Assert.True(set.Contains("k", "j/0"));
        Assert.False(set.Contains("k", "j/1"));

        // An hour after j/0 was recorded the log no longer has it, and a restart would not know it either.
        set.Add("j", "j/2", unixSeconds: 4_601, nowUnixSeconds: 4_601);

        Assert.False(set.Contains("j", "j/0"));
        Assert.True(set.Contains("j", "j/1"));
        Assert.Equal(3, set.Count);
    }

    [Fact]
    public void Memory_stays_bounded_by_the_retention_whatever_the_number_of_batches()
    {
        var set = new RecordedSuperBatches(TimeSpan.FromSeconds(100));
        for (var t = 0; t < 100_000; t++)
        {
            set.Add("j", $"j/{t}", unixSeconds: t, nowUnixSeconds: t);
        }

        Assert.InRange(set.Count, 100, 101);
        Assert.True(set.Contains("j", "j/99999"));
        Assert.False(set.Contains("j", "j/99000"));
    }

    [Theory]
    [InlineData("7D", 7 * 24 * 3600)]
    [InlineData("12h", 12 * 3600)]
    [InlineData("90m", 90 * 60)]
    [InlineData("30s", 30)]
    [InlineData("2M", 60 * 24 * 3600)]
    [InlineData("1Y", 365 * 24 * 3600)]
    public void LogMaxAge_reads_as_RabbitMQ_reads_x_max_age(string value, long seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), RecordedSuperBatches.ParseMaxAge(value));
}
