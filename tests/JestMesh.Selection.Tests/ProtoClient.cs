using Grpc.Core;
using JestMesh.Protos.V1;

namespace JestMesh.Selection.Tests;

/// <summary>
/// What an independent client does with nothing but the protos: open, read, score candidates, ack.
/// The learner's "scores" are the reference embeddings the test published (L2-normalised rows of
/// the right shape), so the only thing under test is the service.
/// </summary>
public static class ProtoClient
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>The next response, or the call's error; null when the stream ended.</summary>
    public static async Task<CurateResponse?> NextAsync(AsyncDuplexStreamingCall<CurateRequest, CurateResponse> call, TimeSpan? deadline = null)
    {
        ArgumentNullException.ThrowIfNull(call);
        return await call.ResponseStream.MoveNext().WaitAsync(deadline ?? Deadline) ? call.ResponseStream.Current : null;
    }

    /// <summary>Reads until the call fails and returns its status (fails the test when the stream ends or a deadline passes).</summary>
    public static async Task<RpcException> ErrorAsync(AsyncDuplexStreamingCall<CurateRequest, CurateResponse> call, List<CurateResponse>? seen = null, TimeSpan? deadline = null)
    {
        ArgumentNullException.ThrowIfNull(call);
        while (true)
        {
            try
            {
                var next = await NextAsync(call, deadline);
                if (next is null)
                {
                    throw new Xunit.Sdk.XunitException("the stream ended without an error");
                }
                seen?.Add(next);
            }
            catch (RpcException ex)
            {
                return ex;
            }
        }
    }

    /// <summary>Valid learner scores for <paramref name="source"/>: its own reference embeddings.</summary>
    public static LearnerScores ScoresFor(ScoredSuperBatch source, long learnerStep = 0)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new LearnerScores
        {
            SuperBatchId = source.Id,
            ImageEmbeddings = source.ReferenceImageEmbeddings.Clone(),
            TextEmbeddings = source.ReferenceTextEmbeddings.Clone(),
            Alpha = 10,
            Beta = -10,
            LearnerStep = learnerStep,
        };
    }

    /// <summary>
    /// Drives a learner-side Curate session: scores every candidate (in the order it arrives) and acks
    /// every batch, until <paramref name="batches"/> batches arrived. Returns the candidates' ids in
    /// arrival order and the batches. <paramref name="scoresFor"/>: the learner's scores of a candidate
    /// (default <see cref="ScoresFor"/>).
    /// </summary>
    public static async Task<(List<string> Candidates, List<CuratedBatch> Batches)> TrainAsync(
        AsyncDuplexStreamingCall<CurateRequest, CurateResponse> call, IReadOnlyList<ScoredSuperBatch> published, int batches,
        Func<ScoredSuperBatch, LearnerScores>? scoresFor = null)
    {
        scoresFor ??= source => ScoresFor(source);
        ArgumentNullException.ThrowIfNull(call);
        ArgumentNullException.ThrowIfNull(published);
        var candidates = new List<string>();
        var received = new List<CuratedBatch>();
        var pending = new Queue<string>();
        var scoring = false;
        while (received.Count < batches)
        {
            var next = await NextAsync(call) ?? throw new Xunit.Sdk.XunitException($"the stream ended after {received.Count} batches");
            switch (next.KindCase)
            {
                case CurateResponse.KindOneofCase.Candidate:
                    candidates.Add(next.Candidate.SuperBatchId);
                    pending.Enqueue(next.Candidate.SuperBatchId);
                    break;
                case CurateResponse.KindOneofCase.Batch:
                    received.Add(next.Batch);
                    scoring = false;
                    if (!next.Batch.Replayed)
                    {
                        await call.RequestStream.WriteAsync(new CurateRequest { Ack = new Ack { Sequence = next.Batch.Sequence } });
                    }
                    break;
                default:
                    break;
            }
            // One candidate scored at a time, as a trainer does: score, wait for its batch, ack, next.
            if (!scoring && pending.Count > 0 && received.Count < batches)
            {
                var id = pending.Dequeue();
                await call.RequestStream.WriteAsync(new CurateRequest { Scores = scoresFor(published.Single(p => p.Id == id)) });
                scoring = true;
            }
        }
        return (candidates, received);
    }

    /// <summary>Consumers of a queue (0 when it is gone), and whether it exists.</summary>
    public static async Task<(bool Exists, uint Consumers, uint Ready)> QueueAsync(TestKit.BrokerClient broker, string queue)
    {
        ArgumentNullException.ThrowIfNull(broker);
        var connection = await broker.Connections.PublishConnectionAsync(CancellationToken.None);
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(queue);
            return (true, ok.ConsumerCount, ok.MessageCount);
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return (false, 0, 0);
        }
    }
}
