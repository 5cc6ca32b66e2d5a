# Seed data for the rt-displayr integration tests, inserted after `rt-setup-database --action init`
# with `rt-setup-database --action insert --datafile <this file>` (rt5.py does both).
#
# Why it exists: a fresh RT 5 grants nothing to Everyone or Privileged, so mail from clients and
# replies from staff fail until these rights are given. The rights are granted per queue on
# General and Support only: the queue Vault has none, so a test can hide a ticket from a
# non-superuser by moving it there. ShowOutgoingEmail goes to the group Staff only, so an account
# outside it (created by the scenario) reads history without the EmailRecord transactions.
# Passwords come from the environment so that no credential is written in the repository.

my $password = $ENV{RT_DISPLAYR_TEST_PASSWORD} or die "RT_DISPLAYR_TEST_PASSWORD is not set\n";

@Queues = (
    {   Name              => 'Support',
        Description       => 'Second queue of the integration scenario',
        CorrespondAddress => 'support@rt-displayr.test',
        CommentAddress    => 'support-comment@rt-displayr.test',
    },
    {   Name        => 'Vault',
        Description => 'No rights for anyone but root: a ticket moved here is hidden from staff',
    },
);

@Users = (
    {   Name         => 'jdoe',
        RealName     => 'John Doe',
        EmailAddress => 'jdoe@staff.rt-displayr.test',
        Password     => $password,
        Privileged   => 1,
    },
    {   Name         => 'msmith',
        RealName     => 'Mary Smith',
        EmailAddress => 'msmith@staff.rt-displayr.test',
        Password     => $password,
        Privileged   => 1,
    },
);

@Groups = (
    {   Name        => 'Staff',
        Description => 'Staff who may read outgoing mail (ShowOutgoingEmail)',
        Members     => { Users => [ 'jdoe', 'msmith' ] },
    },
);

my @staff_rights = qw(
    SeeQueue ShowTicket CreateTicket ModifyTicket ReplyToTicket CommentOnTicket
    OwnTicket TakeTicket StealTicket ShowTicketComments Watch WatchAsAdminCc
);

@ACL = (
    # mail from clients who are not users yet: the gateway creates them, then needs these
    map( { { GroupDomain => 'SystemInternal', GroupType => 'Everyone', Right => $_ } }
        qw(CreateTicket ReplyToTicket) ),
    map {
        my $queue = $_;
        (   map( {
                    {   GroupDomain => 'SystemInternal',
                        GroupType   => 'Privileged',
                        Queue       => $queue,
                        Right       => $_,
                    }
                } @staff_rights ),
            {   GroupDomain => 'UserDefined',
                GroupId     => 'Staff',
                Queue       => $queue,
                Right       => 'ShowOutgoingEmail',
            },
        )
    } qw(General Support),
);

@Final = (
    sub {
        # initialdata gives root the well-known password 'password'; use the session's one
        my $root = RT::User->new( RT->SystemUser );
        $root->Load('root');
        my ( $ok, $msg ) = $root->SetPassword($password);
        die "cannot set root's password: $msg\n" unless $ok;
    },
);

1;
