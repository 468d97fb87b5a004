using Grpc.Core;
using JestMesh.Learning;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Selection;

/// <summary>
/// A Curate stream after `opened` and the replay: candidates out, scores and acks in, curated
/// batches out through the session's <see cref="SessionPump"/> (which owns every candidate held).
/// </summary>
internal sealed class CurateLoop(IAsyncStreamReader<CurateRequest> requests, IServerStreamWriter<CurateResponse> responses, SessionPump pump,
    JobFeed feed, CurationSettings settings, long sent, long acked, CancellationToken token)
{
    public SessionPump Pump => pump;

    /// <summary>
    /// Keeps up to <paramref name="candidatesAhead"/> candidates at the client while it trains, so it
    /// scores the next one as soon as its step ends; never stops reading the client while waiting for data.
    /// </summary>
    public async Task WithLearnerAsync(int candidatesAhead)
    {
        using var takes = CancellationTokenSource.CreateLinkedTokenSource(token);
        using var reads = CancellationTokenSource.CreateLinkedTokenSource(token);
        Task<Delivery>? take = null;
        Task<bool>? read = null;
        try
        {
            while (true)
            {
                if (take is null && pump.Held < candidatesAhead)
                {
                    take = feed.TakeAsync(takes.Token).AsTask();
                }
                read ??= requests.MoveNext(reads.Token);
                if (take is null)
                {
                    await Task.WhenAny(read);
                }
                else
                {
                    await Task.WhenAny(read, take);
                }
                if (take is { IsCompleted: true })
                {
                    var delivery = await take;
                    take = null;
                    pump.Hold(delivery);
                    // A super-batch the session's settings cannot curate is refused before the client scores it.
                    settings.CheckFits(delivery.Batch.Examples.Count, $"super-batch {ClientText.Quote(delivery.Batch.Id)}");
                    var candidate = new Candidate { SuperBatchId = delivery.Batch.Id, SuperBatchSequence = delivery.Batch.Sequence };
                    candidate.Examples.Add(delivery.Batch.Examples);
                    await responses.WriteAsync(new CurateResponse { Candidate = candidate }, token);
                    continue;
                }
                if (!read.IsCompleted)
                {
                    continue;
                }
                var more = await read;
                read = null;
                if (!more || !await HandleAsync(requests.Current))
                {
                    return;
                }
            }
        }
        finally
        {
            // The call must not end with a read of the client pending (the server would fail the
            // request instead of sending this call's status): cancel and await it.
            if (read is { IsCompleted: false })
            {
                await reads.CancelAsync();
                try
                {
                    await read;
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or RpcException)
                {
                    // Cancelled, as asked.
                }
            }
            await takes.CancelAsync();
            if (take is not null)
            {
                try
                {
                    pump.Hold(await take);
                }
                catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
                {
                    // Nothing was taken.
                }
            }
        }
    }

    /// <summary>Sends up to <paramref name="batchesAhead"/> batches beyond the client's last ack.</summary>
    public async Task LearnerFreeAsync(int batchesAhead)
    {
        while (true)
        {
            if (sent - acked < batchesAhead)
            {
                await pump.TakeAsync(token);
                await SendOldestAsync(null);
                continue;
            }
            if (!await requests.MoveNext(token) || !await HandleAsync(requests.Current))
            {
                return;
            }
        }
    }

    private async Task<bool> HandleAsync(CurateRequest request)
    {
        switch (request.KindCase)
        {
            case CurateRequest.KindOneofCase.Ack:
                if (request.Ack.Sequence < acked || request.Ack.Sequence > sent)
                {
                    throw new InvalidCurationInputException($"ack.sequence {request.Ack.Sequence} is outside [{acked}, {sent}] (acked so far, last sent).");
                }
                acked = request.Ack.Sequence;
                return true;
            case CurateRequest.KindOneofCase.Scores when settings.NeedsLearner:
                var expected = pump.Oldest;
                if (expected is null || request.Scores.SuperBatchId != expected.Batch.Id)
                {
                    throw new InvalidCurationInputException($"scores.super_batch_id {ClientText.Quote(request.Scores.SuperBatchId)} is not the oldest candidate in flight, {ClientText.Quote(expected?.Batch.Id)}.");
                }
                await SendOldestAsync(request.Scores);
                return true;
            default:
                throw new InvalidCurationInputException(settings.NeedsLearner
                    ? $"'{request.KindCase}' is not allowed once the session is open (only 'scores' and 'ack')."
                    : $"'{request.KindCase}' is not allowed in a learner-free session (only 'ack').");
        }
    }

    private async Task SendOldestAsync(LearnerScores? scores)
    {
        var batch = await pump.CurateOldestAsync(scores, sent - acked, b => responses.WriteAsync(new CurateResponse { Batch = b }, token), token);
        sent = batch.Sequence;
    }
}
