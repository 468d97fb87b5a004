namespace JestMesh.Selection.Tests;

[Trait("Tier", "Unit")]
public sealed class JobFencesTests
{
    [Fact]
    public void A_batch_behind_a_later_takeover_of_its_job_is_stale_and_one_before_it_is_not()
    {
        var fences = new JobFences();
        fences.Add("j", 10, "a");
        fences.Add("j", 30, "b");

        Assert.False(fences.IsStale("j", fence: 10, offset: 20));
        Assert.True(fences.IsStale("j", fence: 10, offset: 40));
        Assert.False(fences.IsStale("j", fence: 30, offset: 40));
        // Another job's takeovers fence nothing of this one.
        Assert.False(fences.IsStale("k", fence: 10, offset: 40));
    }

    [Fact]
    public void A_takeover_marker_appended_twice_does_not_fence_its_own_holders_batches()
    {
        // The holder's marker publish was retried (its first confirm never came), so the log has it
        // at 10 and again at 15; the holder's fence is the first copy's offset.
        var fences = new JobFences();
        fences.Add("j", 10, "a");
        fences.Add("j", 15, "a");

        Assert.False(fences.IsStale("j", fence: 10, offset: 20));

        // A real takeover by another replica still fences it.
        fences.Add("j", 25, "b");
        Assert.True(fences.IsStale("j", fence: 10, offset: 30));
        // A late copy of the old marker, after that takeover, is not a new takeover either.
        fences.Add("j", 35, "a");
        Assert.False(fences.IsStale("j", fence: 25, offset: 40));
    }
}
