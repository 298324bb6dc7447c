//! The IRC numeric replies natter sends (RFC 1459/2812 and their modern
//! use as documented on modern.ircdocs.horse), and which one answers each
//! [`ErrorCode`].

use crate::proto::ErrorCode;

pub const RPL_WELCOME: u16 = 1;
pub const RPL_YOURHOST: u16 = 2;
pub const RPL_CREATED: u16 = 3;
pub const RPL_MYINFO: u16 = 4;
pub const RPL_ISUPPORT: u16 = 5;
pub const RPL_UMODEIS: u16 = 221;
pub const RPL_LUSERCLIENT: u16 = 251;
pub const RPL_LUSEROP: u16 = 252;
pub const RPL_LUSERUNKNOWN: u16 = 253;
pub const RPL_LUSERCHANNELS: u16 = 254;
pub const RPL_LUSERME: u16 = 255;
pub const RPL_ADMINME: u16 = 256;
pub const RPL_ADMINLOC1: u16 = 257;
pub const RPL_ADMINLOC2: u16 = 258;
pub const RPL_ADMINEMAIL: u16 = 259;
pub const RPL_LOCALUSERS: u16 = 265;
pub const RPL_GLOBALUSERS: u16 = 266;
pub const RPL_AWAY: u16 = 301;
pub const RPL_USERHOST: u16 = 302;
pub const RPL_ISON: u16 = 303;
pub const RPL_UNAWAY: u16 = 305;
pub const RPL_NOWAWAY: u16 = 306;
pub const RPL_WHOISUSER: u16 = 311;
pub const RPL_WHOISSERVER: u16 = 312;
pub const RPL_WHOISOPERATOR: u16 = 313;
pub const RPL_WHOISBOT: u16 = 335;
pub const RPL_INVITELIST: u16 = 336;
pub const RPL_ENDOFINVITELIST: u16 = 337;
pub const RPL_WHOWASUSER: u16 = 314;
pub const RPL_ENDOFWHO: u16 = 315;
pub const RPL_WHOISIDLE: u16 = 317;
pub const RPL_ENDOFWHOIS: u16 = 318;
pub const RPL_WHOISCHANNELS: u16 = 319;
pub const RPL_LISTSTART: u16 = 321;
pub const RPL_LIST: u16 = 322;
pub const RPL_LISTEND: u16 = 323;
pub const RPL_CHANNELMODEIS: u16 = 324;
pub const RPL_CREATIONTIME: u16 = 329;
pub const RPL_WHOISACCOUNT: u16 = 330;
pub const RPL_NOTOPIC: u16 = 331;
pub const RPL_TOPIC: u16 = 332;
pub const RPL_TOPICWHOTIME: u16 = 333;
pub const RPL_INVITING: u16 = 341;
pub const RPL_INVEXLIST: u16 = 346;
pub const RPL_ENDOFINVEXLIST: u16 = 347;
pub const RPL_EXCEPTLIST: u16 = 348;
pub const RPL_ENDOFEXCEPTLIST: u16 = 349;
pub const RPL_VERSION: u16 = 351;
pub const RPL_WHOREPLY: u16 = 352;
pub const RPL_WHOSPCRPL: u16 = 354;
pub const RPL_NAMREPLY: u16 = 353;
pub const RPL_LINKS: u16 = 364;
pub const RPL_ENDOFLINKS: u16 = 365;
pub const RPL_ENDOFNAMES: u16 = 366;
pub const RPL_ENDOFWHOWAS: u16 = 369;
pub const RPL_INFO: u16 = 371;
pub const RPL_ENDOFINFO: u16 = 374;
pub const RPL_BANLIST: u16 = 367;
pub const RPL_ENDOFBANLIST: u16 = 368;
pub const RPL_MOTD: u16 = 372;
pub const RPL_MOTDSTART: u16 = 375;
pub const RPL_ENDOFMOTD: u16 = 376;
pub const RPL_YOUREOPER: u16 = 381;
pub const RPL_REHASHING: u16 = 382;
pub const RPL_TIME: u16 = 391;

pub const ERR_UNKNOWNERROR: u16 = 400;
pub const ERR_NOSUCHNICK: u16 = 401;
pub const ERR_NOSUCHSERVER: u16 = 402;
pub const ERR_NOSUCHCHANNEL: u16 = 403;
pub const ERR_CANNOTSENDTOCHAN: u16 = 404;
pub const ERR_TOOMANYCHANNELS: u16 = 405;
pub const ERR_WASNOSUCHNICK: u16 = 406;
pub const ERR_TOOMANYTARGETS: u16 = 407;
pub const ERR_NOORIGIN: u16 = 409;
pub const ERR_INVALIDCAPCMD: u16 = 410;
pub const ERR_NORECIPIENT: u16 = 411;
pub const ERR_NOTEXTTOSEND: u16 = 412;
pub const ERR_INPUTTOOLONG: u16 = 417;
pub const ERR_UNKNOWNCOMMAND: u16 = 421;
pub const ERR_NOMOTD: u16 = 422;
pub const ERR_NONICKNAMEGIVEN: u16 = 431;
pub const ERR_ERRONEUSNICKNAME: u16 = 432;
pub const ERR_NICKNAMEINUSE: u16 = 433;
pub const ERR_USERNOTINCHANNEL: u16 = 441;
pub const ERR_NOTONCHANNEL: u16 = 442;
pub const ERR_USERONCHANNEL: u16 = 443;
pub const ERR_NOTREGISTERED: u16 = 451;
pub const ERR_NEEDMOREPARAMS: u16 = 461;
pub const ERR_ALREADYREGISTERED: u16 = 462;
pub const ERR_PASSWDMISMATCH: u16 = 464;
pub const ERR_KEYSET: u16 = 467;
pub const ERR_CHANNELISFULL: u16 = 471;
pub const ERR_UNKNOWNMODE: u16 = 472;
pub const ERR_INVITEONLYCHAN: u16 = 473;
pub const ERR_BANNEDFROMCHAN: u16 = 474;
pub const ERR_BADCHANNELKEY: u16 = 475;
pub const ERR_BANLISTFULL: u16 = 478;
pub const ERR_BADCHANNAME: u16 = 479;
pub const ERR_UNAVAILRESOURCE: u16 = 437;
pub const ERR_NOPRIVILEGES: u16 = 481;
pub const ERR_CHANOPRIVSNEEDED: u16 = 482;
pub const ERR_NOOPERHOST: u16 = 491;
pub const ERR_UMODEUNKNOWNFLAG: u16 = 501;
pub const ERR_USERSDONTMATCH: u16 = 502;
pub const ERR_HELPNOTFOUND: u16 = 524;
pub const RPL_HELPSTART: u16 = 704;
pub const RPL_HELPTXT: u16 = 705;
pub const RPL_ENDOFHELP: u16 = 706;
pub const ERR_INVALIDMODEPARAM: u16 = 696;
pub const RPL_MONONLINE: u16 = 730;
pub const RPL_MONOFFLINE: u16 = 731;
pub const RPL_MONLIST: u16 = 732;
pub const RPL_ENDOFMONLIST: u16 = 733;
pub const ERR_MONLISTFULL: u16 = 734;

// SASL and accounts (IRCv3 sasl-3.1/3.2).
pub const RPL_LOGGEDIN: u16 = 900;
pub const RPL_LOGGEDOUT: u16 = 901;
pub const ERR_NICKLOCKED: u16 = 902;
pub const RPL_SASLSUCCESS: u16 = 903;
pub const ERR_SASLFAIL: u16 = 904;
pub const ERR_SASLTOOLONG: u16 = 905;
pub const ERR_SASLABORTED: u16 = 906;
pub const ERR_SASLALREADY: u16 = 907;
pub const RPL_SASLMECHS: u16 = 908;

/// The numeric that answers an error code, and its conventional text.
/// `None`: the error has no numeric and is sent as a `NOTICE`.
pub fn for_error(code: ErrorCode) -> Option<(u16, &'static str)> {
    Some(match code {
        ErrorCode::NickInUse => (ERR_NICKNAMEINUSE, "Nickname is already in use"),
        ErrorCode::NickInvalid => (ERR_ERRONEUSNICKNAME, "Erroneous nickname"),
        ErrorCode::NotRegistered => (ERR_NOTREGISTERED, "You have not registered"),
        ErrorCode::AlreadyRegistered => (ERR_ALREADYREGISTERED, "You may not reregister"),
        ErrorCode::UnknownCommand => (ERR_UNKNOWNCOMMAND, "Unknown command"),
        ErrorCode::BadArguments => (ERR_NEEDMOREPARAMS, "Not enough parameters"),
        ErrorCode::NoSuchNick => (ERR_NOSUCHNICK, "No such nick/channel"),
        ErrorCode::NoSuchRoom => (ERR_NOSUCHCHANNEL, "No such channel"),
        ErrorCode::NotInRoom => (ERR_NOTONCHANNEL, "You're not on that channel"),
        ErrorCode::RoomInvalid => (ERR_BADCHANNAME, "Illegal channel name"),
        ErrorCode::LineTooLong => (ERR_INPUTTOOLONG, "Input line was too long"),
        ErrorCode::EmptyMessage => (ERR_NOTEXTTOSEND, "No text to send"),
        ErrorCode::ChanOpNeeded => (ERR_CHANOPRIVSNEEDED, "You're not channel operator"),
        ErrorCode::Banned => (ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"),
        ErrorCode::InviteOnly => (ERR_INVITEONLYCHAN, "Cannot join channel (+i)"),
        ErrorCode::BadKey => (ERR_BADCHANNELKEY, "Cannot join channel (+k)"),
        ErrorCode::RoomFull => (ERR_CHANNELISFULL, "Cannot join channel (+l)"),
        ErrorCode::CannotSend => (ERR_CANNOTSENDTOCHAN, "Cannot send to channel"),
        ErrorCode::UserNotInRoom => (ERR_USERNOTINCHANNEL, "They aren't on that channel"),
        ErrorCode::UserInRoom => (ERR_USERONCHANNEL, "is already on channel"),
        ErrorCode::UnknownMode => (ERR_UNKNOWNMODE, "is unknown mode char to me"),
        ErrorCode::ListFull => (ERR_BANLISTFULL, "Channel list is full"),
        ErrorCode::TooManyRooms => (ERR_TOOMANYCHANNELS, "You have joined too many channels"),
        ErrorCode::PasswordMismatch => (ERR_PASSWDMISMATCH, "Password incorrect"),
        ErrorCode::UsersDontMatch => (ERR_USERSDONTMATCH, "Cant change mode for other users"),
        ErrorCode::UnknownUserMode => (ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag"),
        ErrorCode::RoomLimit => (ERR_UNAVAILRESOURCE, "Cannot create channel now"),
        ErrorCode::NickRegistered => (
            ERR_NICKNAMEINUSE,
            "Nickname is registered to an account: log in to use it",
        ),
        ErrorCode::InvalidModeParam => (ERR_INVALIDMODEPARAM, "Invalid mode parameter"),
        ErrorCode::NoPrivileges => (
            ERR_NOPRIVILEGES,
            "Permission Denied- You're not an IRC operator",
        ),
        ErrorCode::NoOperHost => (ERR_NOOPERHOST, "No O-lines for your host"),
        ErrorCode::WasNoSuchNick => (ERR_WASNOSUCHNICK, "There was no such nickname"),
        ErrorCode::MonListFull => (ERR_MONLISTFULL, "Monitor list is full."),
        ErrorCode::InvalidUtf8
        | ErrorCode::Disabled
        | ErrorCode::AuthFailed
        | ErrorCode::Throttled
        | ErrorCode::AccountExists
        | ErrorCode::NotLoggedIn
        | ErrorCode::RoomRegistered
        | ErrorCode::BadPassword
        | ErrorCode::Malformed
        | ErrorCode::Timeout
        | ErrorCode::ExcessFlood
        | ErrorCode::StoreFailed => return None,
    })
}
