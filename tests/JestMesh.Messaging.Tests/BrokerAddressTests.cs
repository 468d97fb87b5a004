namespace JestMesh.Messaging.Tests;

[Trait("Tier", "Unit")]
public sealed class BrokerAddressTests
{
    [Fact]
    public void A_cluster_is_its_nodes_uris_separated_by_commas()
    {
        var address = BrokerAddress.Parse("amqp://u:p@127.0.0.1:5701/vh, amqp://u:p@127.0.0.1:5702/vh,amqp://u:p@127.0.0.1:5703/vh");

        Assert.Equal([5701, 5702, 5703], address.Endpoints.Select(e => e.Port));
        Assert.All(address.Endpoints, e => Assert.Equal("127.0.0.1", e.HostName));
        Assert.Equal("u:p", address.Primary.UserInfo);
    }

    [Fact]
    public void One_uri_is_a_cluster_of_one()
    {
        var address = BrokerAddress.Parse("amqps://u:p@broker.example:5671/");

        var endpoint = Assert.Single(address.Endpoints);
        Assert.Equal(5671, endpoint.Port);
        Assert.True(endpoint.Ssl.Enabled);
        Assert.Equal("broker.example", endpoint.Ssl.ServerName);
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData("http://127.0.0.1:5672/", "must be an absolute amqp:// or amqps:// URI.")]
    [InlineData("amqp://u:p@a:1/,nonsense", "entry 2 of 2 must be an absolute amqp://")]
    [InlineData("amqp://u:p@a:1/,amqp://v:p@b:1/", "entry 2 of 2 differs from the first in scheme, credentials or virtual host")]
    [InlineData("amqp://u:p@a:1/x,amqp://u:p@b:1/y", "entry 2 of 2 differs")]
    [InlineData("amqp://u:p@a:1/,amqps://u:p@b:1/", "entry 2 of 2 differs")]
    public void A_bad_list_names_the_setting_and_the_entry(string value, string expected)
    {
        var error = Assert.Throws<FormatException>(() => BrokerAddress.Parse(value));

        Assert.StartsWith("Messaging:Uri ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("u:p", error.Message, StringComparison.Ordinal);
    }
}
