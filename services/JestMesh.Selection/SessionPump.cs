using System.Diagnostics;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Selection;

/// <summary>
/// The super-batches one stream holds, oldest first, and the one select → record → send path every
/// stream uses. The pump is the single owner of what it holds: a super-batch leaves it either
/// recorded (then acked) or, when the stream ends for any reason, returned to the job's feed, once.
/// </summary>
internal sealed class SessionPump(SessionStore store, SessionState session, JobFeed feed) : IAsyncDisposable
{
    private readonly Queue<Delivery> _held = new();

    /// <summary>Super-batches taken and neither recorded nor returned.</summary>
    public int Held => _held.Count;

    /// <summary>The oldest super-batch held (the one the next scores must be for).</summary>
    public Delivery? Oldest => _held.TryPeek(out var delivery) ? delivery : null;

    /// <summary>Takes ownership of a super-batch taken from the feed.</summary>
    public void Hold(Delivery delivery) => _held.Enqueue(delivery);

    /// <summary>Takes the job's next super-batch and holds it.</summary>
    public async Task<Delivery> TakeAsync(CancellationToken cancellationToken)
    {
        var delivery = await feed.TakeAsync(cancellationToken);
        Hold(delivery);
        return delivery;
    }

    /// <summary>
    /// Selects from the oldest super-batch held, records the batch (confirmed), then sends it while
    /// the super-batch is acked: the order that makes a crash at any point safe. A failure before the
    /// record leaves the super-batch held (returned when the stream ends); after it, the super-batch
    /// belongs to the log.
    /// </summary>
    public async Task<CuratedBatch> CurateOldestAsync(LearnerScores? scores, long staleness, Func<CuratedBatch, Task> send, CancellationToken cancellationToken)
    {
        var delivery = Oldest ?? throw new InvalidOperationException("no super-batch held.");
        CuratedBatch batch;
        ActivityContext span;
        using (var activity = SelectionTelemetry.Source.StartActivity(Telemetry.Spans.SelectionSelect, ActivityKind.Internal, delivery.Producer,
            links: delivery.Producer == default ? null : [new ActivityLink(delivery.Producer)]))
        {
            activity?.SetTag(Telemetry.Attributes.Session, session.Id);
            activity?.SetTag(Telemetry.Attributes.Job, session.Job);
            activity?.SetTag(Telemetry.Attributes.SuperBatchId, delivery.Batch.Id);
            activity?.SetTag(Telemetry.Attributes.SuperBatchSequence, delivery.Batch.Sequence);
            activity?.SetTag(Telemetry.Attributes.Policy, session.Settings.Policy.Name());
            batch = BatchSelector.Select(session.Settings, delivery.Batch, scores, session.Id, session.LastSequence + 1);
            batch.Diagnostics.LearnerStaleness = staleness;
            activity?.SetTag(Telemetry.Attributes.Sequence, batch.Sequence);
            SelectionTelemetry.SelectionLatency.Record(batch.Diagnostics.SelectionMs);
            SelectionTelemetry.MeanLearnability.Record(batch.Diagnostics.MeanScoreSelected);
            SelectionTelemetry.Staleness.Record(staleness);
            // Recording must not be abandoned half-way by a client that goes away: the batch is
            // either in the log (and will be replayed) or not (and the super-batch goes back).
            try
            {
                await store.RecordAsync(session, batch, feed, CancellationToken.None);
            }
            catch (Exception ex) when (ex is PublishRejectedException or PublishUnroutableException)
            {
                throw SelectionException.Unavailable($"the batch log refused batch {batch.Sequence} of session {session.Id}: {ex.Message}; reconnect and resume.", ex);
            }
            span = activity?.Context ?? default;
        }
        // Recorded: the super-batch now belongs to the log. The ack runs while the batch is sent
        // (it is not on the learner's critical path).
        _held.Dequeue();
        var acked = feed.AckAsync(delivery);
        try
        {
            using (StartSend(batch, span))
            {
                await send(batch);
            }
        }
        finally
        {
            await acked;
        }
        return batch;
    }

    /// <summary>A send span for <paramref name="batch"/>; its traceparent goes into the batch.</summary>
    public static Activity? StartSend(CuratedBatch batch, ActivityContext parent = default)
    {
        var activity = parent == default
            ? SelectionTelemetry.Source.StartActivity(Telemetry.Spans.CurateSend, ActivityKind.Producer)
            : SelectionTelemetry.Source.StartActivity(Telemetry.Spans.CurateSend, ActivityKind.Producer, parent);
        activity?.SetTag(Telemetry.Attributes.Sequence, batch.Sequence);
        activity?.SetTag(Telemetry.Attributes.SuperBatchId, batch.SuperBatchId);
        if (activity is not null)
        {
            batch.Traceparent = activity.Id ?? "";
        }
        return activity;
    }

    /// <summary>Returns every super-batch still held to the feed (in their original places).</summary>
    public ValueTask DisposeAsync()
    {
        while (_held.TryDequeue(out var delivery))
        {
            feed.Return(delivery);
        }
        return ValueTask.CompletedTask;
    }
}
