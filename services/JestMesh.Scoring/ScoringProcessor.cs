using System.Diagnostics;
using Google.Protobuf;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Scoring;

/// <summary>
/// The Scoring consumer's handler: parse and check a super-batch, score it, publish the scored
/// super-batch with message id "scored/{super-batch id}" and wait for the broker's confirm before
/// returning (so the input is acked only after that). Input that can never be scored is poison.
/// </summary>
public sealed class ScoringProcessor
{
    private readonly SuperBatchScorer _scorer;
    private readonly ConfirmedPublisher _publisher;
    private readonly BrokerConnections _connections;

    public ScoringProcessor(SuperBatchScorer scorer, ConfirmedPublisher publisher, BrokerConnections connections)
    {
        _scorer = scorer;
        _publisher = publisher;
        _connections = connections;
    }

    /// <summary>Message id of the scored super-batch: deterministic, so a re-scored duplicate is dropped downstream.</summary>
    public static string ScoredMessageId(string superBatchId) => "scored/" + superBatchId;

    public async Task HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        using var activity = SuperBatchScorer.Source.StartActivity(Telemetry.Spans.ScoringProcess, ActivityKind.Internal, parentContext: default,
            links: message.ProducerContext == default ? null : [new ActivityLink(message.ProducerContext)]);
        var batch = _scorer.Parse(message.MessageId, message.Body.Span);
        activity?.SetTag(Telemetry.Attributes.SuperBatchId, batch.Id);
        activity?.SetTag(Telemetry.Attributes.SuperBatchSize, batch.Examples.Count);
        var scored = await _scorer.ScoreAsync(batch);
        activity?.SetTag(Telemetry.Attributes.CacheHits, scored.CacheHits);
        using var publish = SuperBatchScorer.Source.StartActivity(Telemetry.Spans.ScoringPublish);
        await _publisher.PublishAsync(
            new OutgoingMessage("", _connections.Topology.Scored, ScoredMessageId(batch.Id), scored.ToByteArray()) { Type = ScoredSuperBatch.Descriptor.FullName },
            cancellationToken);
    }
}
