"""Where Batch instances run: subnets and security groups given in settings, or a small VPC.

The created VPC has one public subnet per zone and an internet gateway (instances need the
ECR, ECS, S3 and CloudWatch endpoints), a free S3 gateway endpoint, and an egress-only
security group: nothing can connect in. Use existing private subnets with a NAT for
instances without public addresses.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from stack.settings import NetworkSettings


class NetworkArgs:
    def __init__(self, *, settings: NetworkSettings, tags: dict[str, str]) -> None:
        self.settings = settings
        self.tags = tags


class Network(pulumi.ComponentResource):
    subnet_ids: pulumi.Output[list[str]]
    security_group_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:network:Network", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        if s.vpc_id:
            vpc_id: pulumi.Input[str] = s.vpc_id
            subnet_ids: pulumi.Input[list[str]] = list(s.subnet_ids)
        else:
            vpc = aws.ec2.Vpc(
                name,
                aws.ec2.VpcArgs(
                    cidr_block=s.cidr_block,
                    enable_dns_hostnames=True,
                    enable_dns_support=True,
                    tags={**args.tags, "Name": name},
                ),
                opts=child,
            )
            vpc_id = vpc.id
            igw = aws.ec2.InternetGateway(name, aws.ec2.InternetGatewayArgs(vpc_id=vpc.id, tags=args.tags), opts=child)
            routes = aws.ec2.RouteTable(
                f"{name}-public",
                aws.ec2.RouteTableArgs(
                    vpc_id=vpc.id,
                    routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                    tags=args.tags,
                ),
                opts=child,
            )
            zones = aws.get_availability_zones_output(state="available")
            blocks = list(
                ipaddress.ip_network(s.cidr_block).subnets(
                    new_prefix=min(ipaddress.ip_network(s.cidr_block).prefixlen + 4, 28)
                )
            )
            subnets = []
            for i in range(s.availability_zones):
                subnet = aws.ec2.Subnet(
                    f"{name}-public-{i}",
                    aws.ec2.SubnetArgs(
                        vpc_id=vpc.id,
                        cidr_block=str(blocks[i]),
                        availability_zone=zones.names[i],
                        map_public_ip_on_launch=True,
                        tags={**args.tags, "Name": f"{name}-public-{i}"},
                    ),
                    opts=child,
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-public-{i}",
                    aws.ec2.RouteTableAssociationArgs(subnet_id=subnet.id, route_table_id=routes.id),
                    opts=child,
                )
                subnets.append(subnet.id)
            subnet_ids = pulumi.Output.all(*subnets)
            aws.ec2.VpcEndpoint(
                f"{name}-s3",
                aws.ec2.VpcEndpointArgs(
                    vpc_id=vpc.id,
                    service_name=aws.get_region_output().region.apply(lambda r: f"com.amazonaws.{r}.s3"),
                    vpc_endpoint_type="Gateway",
                    route_table_ids=[routes.id],
                    tags=args.tags,
                ),
                opts=child,
            )
        if s.security_group_ids:
            groups: pulumi.Input[list[str]] = list(s.security_group_ids)
        else:
            group = aws.ec2.SecurityGroup(
                f"{name}-batch",
                aws.ec2.SecurityGroupArgs(
                    vpc_id=vpc_id,
                    description="vsr Batch instances: outbound only",
                    egress=[
                        aws.ec2.SecurityGroupEgressArgs(
                            protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"], description="AWS APIs"
                        )
                    ],
                    ingress=[],
                    tags=args.tags,
                ),
                opts=child,
            )
            groups = pulumi.Output.all(group.id)
        self.subnet_ids = pulumi.Output.from_input(subnet_ids)
        self.security_group_ids = pulumi.Output.from_input(groups)
        self.register_outputs({"subnet_ids": self.subnet_ids, "security_group_ids": self.security_group_ids})
