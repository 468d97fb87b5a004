using Xunit;
using JestMesh.Protos.V1;

namespace JestMesh.TestKit;

/// <summary>Publishing helpers shared by the tests.</summary>
public static class TestData
{
    /// <summary>Makes and publishes super-batches [first, first+count) of <paramref name="job"/>.</summary>
    public static async Task<List<ScoredSuperBatch>> PublishAsync(ScoredFeeder feeder, BrokerClient broker, string job, int count, int n, int first = 0)
    {
        ArgumentNullException.ThrowIfNull(feeder);
        ArgumentNullException.ThrowIfNull(broker);
        var batches = new List<ScoredSuperBatch>();
        for (var i = first; i < first + count; i++)
        {
            var scored = feeder.Make(job, i, n);
            await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, scored);
            batches.Add(scored);
        }
        return batches;
    }

    /// <summary>What makes a curated batch the same batch: session, sequence, super-batch, selected and filtered ids in order.</summary>
    public static string Identity(CuratedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return $"{batch.SessionId}/{batch.Sequence}/{batch.SuperBatchId}: {string.Join(',', batch.Examples.Select(e => e.Id))} | {string.Join(',', batch.FilteredIds)}";
    }

    /// <summary>Every id of the super-batch is either selected or filtered, once.</summary>
    public static void AssertPartition(CuratedBatch batch, ScoredSuperBatch source, int expectedBatchSize)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(source);
        Assert.Equal(source.Id, batch.SuperBatchId);
        Assert.Equal(expectedBatchSize, batch.Examples.Count);
        var all = batch.Examples.Select(e => e.Id).Concat(batch.FilteredIds).Order().ToArray();
        Assert.Equal(source.Examples.Select(e => e.Id).Order().ToArray(), all);
    }
}
