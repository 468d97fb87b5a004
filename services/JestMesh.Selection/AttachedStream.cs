using JestMesh.Learning;
using JestMesh.Protos.V1;

namespace JestMesh.Selection;

/// <summary>A stream attached to its session and joined to its job; disposing frees both.</summary>
internal sealed class AttachedStream(SessionLease lease, JobMembership membership, CurationSettings settings, int batchSize, int superBatchSize, string referenceSha256) : IAsyncDisposable
{
    public SessionState Session => lease.Session;

    public CancellationToken Token => lease.Token;

    public JobFeed Feed => membership.Feed;

    public CurationSettings Settings => settings;

    public SessionOpened Opened(long cursor) => new()
    {
        SessionId = Session.Id,
        ResumeAfter = cursor,
        SuperBatchSize = superBatchSize,
        BatchSize = batchSize,
        ReferenceCheckpointSha256 = referenceSha256,
    };

    public async ValueTask DisposeAsync()
    {
        await lease.DisposeAsync();
        membership.Dispose();
    }
}
